--- Sentence streaming: a stream of text deltas turned into whole sentences
-- (and, optionally, clauses), for speech bubbles, subtitles and
-- text-to-speech.
--
-- A splitter keeps the text that has not made a whole sentence yet and
-- gives out each sentence once it is sure it is whole. "Sure" means that no
-- text still to come could change the answer: after `Dr.` it waits for the
-- next word (`Dr. Watson` is one sentence, `I saw him. Then` two), after
-- `。` it waits for one more character (a closing `」` belongs to the
-- sentence). So the sentences depend on the text only, never on how it was
-- cut into deltas: fed whole, one byte at a time or in random pieces, a
-- text gives the same sentences (the spec checks it). `finish()` gives the
-- rest at the end.
--
-- The rules, in order, at each stop (`.`, `!`, `?`, `…`, `。`, `！`, `？`, `．`;
-- `।`, `॥`, `؟`, `۔`, `։`, `።`, `။` as `.`):
--
-- - a run of stops counts as one (`?!`, `...`, `。。`), and the closing
--   quotes and brackets (and Markdown's `*` `_`) right after it belong to
--   the sentence (`."`, `!)`, `。」`, `？』`, `.**`);
-- - a CJK stop (`。！？．`) ends the sentence there, no space needed, unless
--   a closing quote follows and then `と`, `っ` or a comma (`「本当？」と言った`);
-- - any other stop ends it only before white space (so
--   `3.14`, `e.g.`, `file.txt`, `Yahoo!Inc` go on), or before a CJK
--   character (`すごい!次は`) for `!` and `?`;
-- - ... and only if the next word does not start with a lower-case letter
--   (`Wait... what?`, `"Go!" she said.`, `etc. and so on` stay whole; Latin,
--   Greek, Cyrillic and Armenian letters, after opening quotes and dashes:
--   `Подожди... что?`, `¿Vienes? —preguntó él.`);
-- - a single `.` after a title or a Latin abbreviation that always goes on
--   (`Dr.`, `Mrs.`, `St.`, `e.g.`, `i.e.`, `vs.`...: `ABBREVIATIONS`), after an
--   initial (`J. R. R. Tolkien`) or capitals joined by dots (`U.S.`, `U.K.`,
--   `D.C.`: `the U.S. Army`; not before `AFTER_INITIALS`: `the U.S. Then`),
--   after a list number at the start of a
--   sentence (`1. First`) or a German ordinal (`am 3. Mai`, `der 1. Platz`:
--   `BEFORE_ORDINALS`, `MONTHS`) does not end it.
--
-- A newline always ends a sentence (lists, paragraphs), and so does more
-- than RUN_MAX (64) characters of white space after a stop. A fenced code
-- block (from a line of three or more backticks or tildes to its closing
-- line, or the text's end) is one piece, fences and all, marked as code
-- (`sp.code[k]`, the callbacks' and the iterator's third value) so a voice
-- can skip it; `skip_code = true` drops it. With
-- `clauses = true`, `,` `;` `:` before white space and `，` `、` `；` `：` also
-- end a piece (a clause). Every piece is given out without the white space
-- around it; empty pieces are not given out.
--
-- Three ways to use it, one per form of streaming:
--
--     -- the callback form (blocking or chat_async, a conversation's say):
--     client:chat_async(sentences.stream({ messages = msgs, on_done = f }, function (s) bubble:add(s) end))
--     -- the iterator form (also inside a task, where it yields):
--     for s in sentences.iter(client:stream { messages = msgs }) do print(s) end
--     -- by hand, with any source of text:
--     local sp = sentences.new(); for _, s in ipairs(sp:push(delta)) do ... end; sp:finish()
--
-- @module aigc.sentences

local util = require "aigc.util"
local words = require "aigc.sentences_words"

local getmetatable, ipairs, pairs, setmetatable, tonumber, tostring, type =
  getmetatable, ipairs, pairs, setmetatable, tonumber, tostring, type
local string_byte, string_find, string_match, string_sub = string.byte, string.find, string.match, string.sub
local table_concat = table.concat

util.own_module()

local M = {}

-- The words the rules know, each a set a game may add to (their lists and
-- what each rule does with them: aigc.sentences_words).
--- Titles and abbreviations a single `.` never ends a sentence after (`Dr.`, `e.g.`).
M.ABBREVIATIONS = words.ABBREVIATIONS
--- Words a single `.` does not end a sentence after before a number (`No. 4411`).
M.BEFORE_NUMBERS = words.BEFORE_NUMBERS
--- Words that open a sentence after capitals joined by dots (`the U.S. Then`).
M.AFTER_INITIALS = words.AFTER_INITIALS
--- German words after which a number and `.` go on (`am 3. Mai`).
M.BEFORE_ORDINALS = words.BEFORE_ORDINALS
--- German months' names, before which a number and `.` go on (`3. Mai`).
M.MONTHS = words.MONTHS

-- Characters (as strings: UTF-8) by their part in a sentence.
local STOPS_CJK = { ["。"] = true, ["！"] = true, ["？"] = true, ["．"] = true, ["｡"] = true }
-- (with the stops of other scripts that end a sentence before a space, as
-- `.` does: Devanagari's danda and double danda, the Arabic question mark,
-- the Urdu full stop, the Armenian, Ethiopic and Myanmar full stops)
local STOPS = { ["."] = true, ["!"] = true, ["?"] = true, ["…"] = true, ["।"] = true, ["॥"] = true,
                ["؟"] = true, ["۔"] = true, ["։"] = true, ["።"] = true, ["။"] = true }
for c in pairs(STOPS_CJK) do STOPS[c] = true end
local CLOSERS = {
  ['"'] = true, ["'"] = true, [")"] = true, ["]"] = true, ["}"] = true, ["”"] = true, ["’"] = true,
  ["»"] = true, ["」"] = true, ["』"] = true, ["）"] = true, ["】"] = true, ["》"] = true,
  ["〉"] = true, ["〕"] = true, ["］"] = true, ["｝"] = true, ["〞"] = true, ["＂"] = true, ["｣"] = true,
  ["*"] = true, ["_"] = true,   -- (Markdown's emphasis: `**Note.** Then`)
  -- (German and others close with what English opens with: „Ja.“ »Nein.« ‚So.‘ ›Gut.‹)
  ["“"] = true, ["‘"] = true, ["«"] = true, ["‹"] = true, ["›"] = true,
}
-- After a CJK quote closed by a stop, these go on with the same sentence
-- (Japanese quotative と / って, a comma): 「本当？」と彼は言った。
local QUOTATIVE = { ["と"] = true, ["っ"] = true, ["、"] = true, ["，"] = true }
-- Opening quotes and brackets, stripped from the word before a dot
-- (`"Dr.`, `“Dr.`, `«Dr.`, `¿Dr.`: still a title).
local OPENERS = { ["("] = true, ["["] = true, ['"'] = true, ["'"] = true, ["{"] = true, ["“"] = true,
  ["‘"] = true, ["„"] = true, ["‚"] = true, ["«"] = true, ["‹"] = true, ["¿"] = true, ["¡"] = true,
  ["「"] = true, ["『"] = true, ["（"] = true, ["【"] = true, ["《"] = true, ["〈"] = true, ["〔"] = true,
  ["［"] = true, ["｛"] = true, ["〝"] = true, ["＂"] = true, ["｢"] = true, ["*"] = true, ["_"] = true }
local CLAUSE_ASCII = { [","] = true, [";"] = true, [":"] = true }
local CLAUSE_CJK = { ["，"] = true, ["、"] = true, ["；"] = true, ["："] = true }
local SPACE = { [" "] = true, ["\t"] = true, ["\r"] = true, ["\f"] = true, ["\v"] = true,
                ["\194\160"] = true, ["\226\128\175"] = true,   -- NBSP, narrow NBSP (French: « Oui\226\128\175! »)
                ["\227\128\128"] = true }   -- ideographic space

-- The character at byte i of s: the character and the index after it, or
-- nil if s ends inside it (the rest of a UTF-8 sequence is still to come).
-- A byte that cannot start a sequence counts as a character of its own.
local function char_at (s, i)
  local b = string_byte(s, i)
  if b == nil then return nil end
  local n = (b < 0xC0) and 1 or (b < 0xE0) and 2 or (b < 0xF0) and 3 or 4
  if i + n - 1 > #s then return nil end
  return string_sub(s, i, i + n - 1), i + n
end

-- A piece without the white space around it: ASCII's, and the no-break,
-- narrow no-break and ideographic spaces (in any order and number).
-- (Byte by byte from each end: patterns such as "%s+$" try every start in
-- a run of white space, and stripping one no-break space per pass copied
-- the piece once per space: quadratic in a piece with kilobytes of them.)
local WIDE_SPACES = { "\194\160", "\226\128\175", "\227\128\128" }
local function space_len (s, i, at_end)   -- the length of the white space ending (or starting) at i, or nil
  local b = string_byte(s, i)
  if b == 32 or (b >= 9 and b <= 13) then return 1 end
  for _, w in ipairs(WIDE_SPACES) do
    local from = at_end and i - #w + 1 or i
    if from >= 1 and string_sub(s, from, from + #w - 1) == w then return #w end
  end
  return nil
end
local function trim (s)
  local i, e = 1, #s
  while i <= e do
    local n = space_len(s, i, false)
    if n == nil then break end
    i = i + n
  end
  while e >= i do
    local n = space_len(s, e, true)
    if n == nil or e - n + 1 < i then break end
    e = e - n
  end
  return string_sub(s, i, e)
end

-- Dashes that open a reply (`¿Vienes? —preguntó él.`): skipped, as
-- opening quotes are, before the next word's first letter.
local DASHES = { ["—"] = true, ["–"] = true }

-- Whether the character is a lower-case letter: ASCII's, and (two-byte
-- UTF-8) those of Latin-1, Latin Extended-A, Greek, Cyrillic and Armenian.
local function is_lower (c)
  if #c == 1 then return string_find(c, "^%l$") ~= nil end
  if #c ~= 2 then return false end
  local b1, b2 = string_byte(c, 1, 2)
  local cp = (b1 - 0xC0) * 64 + (b2 - 0x80)
  if cp >= 0xDF and cp <= 0xFF then return cp ~= 0xF7 end                 -- ß à ... ÿ (not ÷)
  if cp >= 0x100 and cp <= 0x17F then                                     -- Latin Extended-A: case pairs
    if cp == 0x138 or cp == 0x149 or cp == 0x17F then return true end     -- ĸ ŉ ſ
    if cp == 0x178 then return false end                                  -- Ÿ
    local odd = cp % 2 == 1
    if (cp >= 0x139 and cp <= 0x148) or (cp >= 0x179 and cp <= 0x17E) then return not odd end
    return odd
  end
  return (cp >= 0x3AC and cp <= 0x3CE) or cp == 0x390                     -- Greek
      or (cp >= 0x430 and cp <= 0x45F)                                    -- Cyrillic
      or (cp >= 0x561 and cp <= 0x587)                                    -- Armenian
end

-- Whether the character is a CJK one (U+3000 and above, below the surrogates' area
-- and the fullwidth forms included): what may follow `!`/`?` without a space.
local function is_wide (c)
  return #c >= 3 and string_byte(c, 1) >= 0xE3
end

-- The word at byte k (letters: ASCII's and Latin-1's, as in `März`), at
-- most 12 bytes; nil when the text to come may still add to it.
local function word_at (s, k, final)
  local j = k
  while j <= #s and j - k < 12 do
    local b = string_byte(s, j)
    if b == 0xC3 then
      if j + 1 > #s then return (final and string_sub(s, k, j - 1)) or nil end
      j = j + 2
    elseif (b >= 65 and b <= 90) or (b >= 97 and b <= 122) then
      j = j + 1
    else
      return string_sub(s, k, j - 1)
    end
  end
  if j > #s and not final then return nil end
  return string_sub(s, k, j - 1)
end

-- Whether the number `word` before a single `.` is a German ordinal
-- (`BEFORE_ORDINALS`, `MONTHS`): s[from] is the space before the number,
-- the word before that at most three spaces back; the next word starts
-- at k. Nil when the text to come decides.
local function ordinal (s, from, word, k, final)
  if not string_find(word, "^%d%d?%d?$") then return false end
  local e = from
  while e >= 1 and e > from - 3 and string_find(string_sub(s, e, e), "^%s$") do e = e - 1 end
  local b = e
  while b >= 1 and not string_find(string_sub(s, b, b), "^%s$") do b = b - 1 end
  local before = string_sub(s, b + 1, e)
  if M.BEFORE_ORDINALS[before:lower()] then return true end   -- (KEEP bytes back: never cut short)
  if #word > 2 or tonumber(word) > 31 then return false end
  local nw = word_at(s, k, final)
  if nw == nil then return nil end
  return M.MONTHS[nw:lower()] == true
end

-- Whether a single `.` at i (after piece text `s`) is part of the word
-- before it; nil when the text to come decides (`k`: the next word's start).
local function dot_goes_on (self, s, i, next_char, k, final)
  local from = i - 1
  while from >= 1 and not string_find(string_sub(s, from, from), "^[%s]$") do from = from - 1 end
  local w = from + 1
  while true do
    local c, nxt = char_at(s, w)
    if c == nil or nxt > i or not OPENERS[c] then break end
    w = nxt
  end
  local word = string_sub(s, w, i - 1)
  -- (a word begun in the text set aside is KEEP bytes or more: no rule's,
  -- though what is here may look like one after its openers: `x(((Dr.`)
  if word == "" or (from < 1 and self.mid_word) then return false end
  if self.abbreviations[word:lower()] then return true end
  if M.BEFORE_NUMBERS[word:lower()] and string_find(next_char, "^%d") then return true end
  if string_find(word, "^%u$") and word ~= "I" then return true end      -- an initial
  -- Capitals joined by dots go on as initials do (`The U.S. Army` was cut
  -- after "The U.S.": a voice read it as a sentence), but before a word
  -- that opens sentences (`I moved to the U.S. Then`: `AFTER_INITIALS`).
  if string_find(word, "^%u%.%u") and string_find((word:gsub("%u%.", "")), "^%u$") then
    local nw = word_at(s, k, final)
    if nw == nil then return nil end
    return not M.AFTER_INITIALS[nw]
  end
  if #word <= 9 and string_find(word, "^%d+$") and not self.head_text
     and not string_find(string_sub(s, 1, from), "%S") then
    return true                                                           -- "1. First" (not 2,000 digits)
  end
  return ordinal(s, from, word, k, final)                                 -- "am 3. Mai"
end

-- A stop's run, its closers, the white space after it are looked at up to
-- RUN_MAX characters each: a model gone astray that sends "Hmm" and ten
-- thousand dots, or a stop and kilobytes of spaces, had the whole run
-- scanned again at every delta while the scan waited on what follows it
-- (quadratic: seconds of a game's frames). Past RUN_MAX a run of stops goes
-- on as a new run (a CJK one ends the sentence), closers go on as text, and
-- white space ends the sentence; decided by the text alone, as every rule.
local RUN_MAX = 64

-- French spacing puts a space before the closing guillemet (`« Oui. » Puis`,
-- `« Oui. », dit-il`): the guillemet after the white space at j belongs to
-- the sentence when white space, a newline, a stop or a clause mark follows
-- it (German opens with it: `Er rief. »Halt!«`). Returns the index after
-- the guillemet, j when there is none, nil when the text to come decides.
local function spaced_closer (s, j, final)
  local k, c, nxt = j, char_at(s, j)
  local n = 0
  while c ~= nil and SPACE[c] do
    n = n + 1
    if n > RUN_MAX then return j end              -- (too far for French spacing)
    k = nxt; c, nxt = char_at(s, k)
  end
  if c == nil then return (k > #s and final) and j or nil end
  if c ~= "»" and c ~= "›" then return j end
  if nxt > #s then return final and nxt or nil end
  local d = char_at(s, nxt)
  if d == nil then return nil end
  if SPACE[d] or d == "\n" or STOPS[d] or CLAUSE_ASCII[d] then return nxt end
  return j
end

-- The decision at the stop at byte i of the buffer: the index of the
-- sentence's last byte; false if it is no end (and the index to scan on
-- from); nil if the text to come decides (then scanning waits).
local function stop_end (self, s, i, final)
  local j, run, cjk = i, 0, false
  local c, nxt
  while true do                                   -- the run of stops
    c, nxt = char_at(s, j)
    if c == nil or not STOPS[c] or run == RUN_MAX then break end
    run = run + 1
    if STOPS_CJK[c] then cjk = true end
    j = nxt
  end
  local single_dot = run == 1 and string_sub(s, i, i) == "."
  local after_run = j
  if c == nil and j <= #s then return nil end     -- inside a UTF-8 sequence
  local closers = 0
  while c ~= nil and CLOSERS[c] and closers < RUN_MAX do   -- closing quotes and brackets
    closers = closers + 1
    j = nxt
    c, nxt = char_at(s, j)
  end
  if j > #s then return final and #s or nil end
  if c == nil then return nil end
  if cjk then
    if j > after_run and QUOTATIVE[c] then return false, j end   -- 「本当？」と言った
    return j - 1
  end
  if SPACE[c] then
    local after = spaced_closer(s, j, final)
    if after == nil then return nil end
    if after > #s then return #s end              -- (the end of the text: spaced_closer said so)
    if after > j then j = after; c = char_at(s, j) end
  end
  if not SPACE[c] and c ~= "\n" then
    local bang = string_find(string_sub(s, i, after_run - 1), "^[!?]+$")
    if bang and is_wide(c) then return j - 1 end
    return false, after_run
  end
  local k, gap = j, 0                             -- the next word's first letter
  while true do
    c, nxt = char_at(s, k)
    if c == nil or not (SPACE[c] or c == "\n" or (k > j and (OPENERS[c] or DASHES[c]))) then break end
    gap = gap + 1
    if gap > RUN_MAX then return j - 1 end         -- (a gap that long ends the sentence)
    k = nxt
  end
  if k > #s then return final and j - 1 or nil end
  if c == nil then return nil end
  if is_lower(c) then return false, after_run end
  if single_dot then
    local on = dot_goes_on(self, s, i, c, k, final)
    if on == nil then return nil end
    if on then return false, after_run end
  end
  return j - 1
end

-- The decision at a clause mark at byte i: as `stop_end`.
local function clause_end (s, i, c, nxt, final)
  if CLAUSE_CJK[c] then return nxt - 1 end
  if nxt > #s then return final and #s or nil end
  local d = char_at(s, nxt)
  if d == nil then return nil end
  if SPACE[d] or d == "\n" then return i end
  return false, nxt
end

local Splitter = {}
Splitter.__index = Splitter
Splitter.__name = "aigc.sentences"

-- Gives out the buffer's first `n` bytes (after what was set aside) as a
-- piece (if not blank), keeps the rest.
local function cut (self, n, whole, out)
  local text = string_sub(self.buf, 1, n)
  if self.head[1] ~= nil then
    text = table_concat(self.head) .. text
    self.head, self.head_len, self.head_text, self.mid_word = {}, 0, false, false
  end
  local piece, code = trim(text), self.fence ~= nil
  self.line_start = string_byte(self.buf, n) == 10   -- (what follows a newline may open a code block)
  self.buf = string_sub(self.buf, n + 1)
  self.pos, self.fence = 1, nil
  if piece ~= "" and not (code and self.skip_code) then
    out[#out + 1] = piece
    self.ends[#out], self.code[#out] = whole, code
  end
end

-- Whether the buffer, at a line's start, opens a fenced code block (up to
-- three spaces, then three or more backticks or tildes; a backtick fence's
-- info string holds no backtick: "```x```" is inline code): its fence and
-- the index after the line; false; nil when the text to come decides.
local function fence_open (s, final)
  local sp = #string_match(s, "^ *")
  local ch = string_sub(s, sp + 1, sp + 1)
  if sp > 3 or (ch ~= "" and ch ~= "`" and ch ~= "~") then return false end
  local run = string_match(s, ch == "~" and "^~*" or "^`*", sp + 1)
  if sp + #run == #s then                         -- (the run may go on)
    if not final then return nil end
    if #run < 3 then return false end
    return run, #s + 1
  end
  if #run < 3 then return false end
  local nl = string_find(s, "\n", sp + #run + 1, true)
  local tick = ch == "`" and string_find(s, "`", sp + #run + 1, true)
  if tick and (nl == nil or tick < nl) then return false end   -- (known before the line's end)
  if nl == nil and not final then return nil end
  return run, (nl or #s) + 1
end

-- The end of the code block in the buffer (its closing fence's line, or
-- the text's end), the lines from i on looked at; nil and the line to look
-- from next when the text to come decides.
local function fence_close (self, i, final)
  local s, fence = self.buf, self.fence
  local pat = string_sub(fence, 1, 1) == "~" and "^( *)(~+)%s*$" or "^( *)(`+)%s*$"
  while true do
    local nl = string_find(s, "\n", i, true)
    if nl == nil and not final then return nil, i end
    local sp, run = string_match(string_sub(s, i, (nl or #s + 1) - 1), pat)
    if (sp and #sp <= 3 and #run >= #fence) or nl == nil then return nl or #s end
    i = nl + 1
  end
end

-- Whether the piece has grown past `max_length` bytes before character c at
-- byte i, where it may be cut (`max_length`: a voice need not wait for the
-- end of a sentence that never ends): before white space, or anywhere but
-- before a stop or a closer at twice that (text with no white space).
local function too_long (self, i, c)
  local max = self.max_length
  if max == nil then return false end
  local len = self.head_len + i - 1
  if len < max then return false end
  return SPACE[c] or (len >= 2 * max and not STOPS[c] and not CLOSERS[c] and c ~= "\n")
end

-- Scans the buffer from where the last scan stopped, cutting the pieces it is sure of.
local function scan (self, final, out)
  local i = self.pos
  while i <= #self.buf do
    local s = self.buf
    if i == 1 and self.line_start and not self.fence then
      local fence, after = fence_open(s, final)
      if fence == nil then break end
      if fence then self.fence, i = fence, after end
    end
    if self.fence then                            -- (a code block: one piece)
      local e, on = fence_close(self, i, final)
      if e == nil then i = on; break end
      cut(self, e, true, out)
      i = 1
    else
      local c, nxt = char_at(s, i)
      if c == nil then break end
      local e, on = false, nxt
      if too_long(self, i, c) then                -- (a bounded piece: before this character)
        cut(self, i - 1, false, out)
        e, on = false, 1
      elseif c == "\n" then
        e = i
      elseif STOPS[c] then
        e, on = stop_end(self, s, i, final)
      elseif self.clauses and (CLAUSE_ASCII[c] or CLAUSE_CJK[c]) then
        e, on = clause_end(s, i, c, nxt, final)
        if e then
          cut(self, e, false, out)
          on = 1
        end
      end
      if e == nil then break end
      if e and (c == "\n" or STOPS[c]) then
        cut(self, e, true, out)
        i = 1
      elseif e then
        i = on
      else
        i = on or nxt
      end
    end
  end
  self.pos = i
end

-- A sentence that goes on for kilobytes without a stop would be copied
-- whole at every delta (25,000 deltas of a 100 KB line: seconds; Chinese or
-- Japanese have no white space to wait for). What no rule looks back at any
-- more -- the text scanned but its last KEEP bytes: the rules look back one
-- word before a dot, and one more for an ordinal (`am 3. Mai`), and a word
-- they can match is short -- is set aside in `head` and joined once, when
-- its piece is cut (`head_text`: it is not blank, for the list-number rule;
-- `mid_word`: the buffer starts inside a word begun in `head`, so its first
-- word is longer than any rule's: `dot_goes_on`).
local SET_ASIDE, KEEP = 1024, 64

local function set_aside (self)
  local buf = self.buf
  local n = self.pos - 1 - KEEP
  if n < SET_ASIDE then return end
  while n > 0 do                                  -- (not inside a UTF-8 sequence)
    local b = string_byte(buf, n + 1)
    if b < 0x80 or b >= 0xC0 then break end
    n = n - 1
  end
  local part = string_sub(buf, 1, n)
  self.head[#self.head + 1] = part
  self.head_len = self.head_len + n
  if string_find(part, "%S") then self.head_text = true end
  self.mid_word = string_find(part, "%S$") ~= nil and string_find(buf, "^%S", n + 1) ~= nil
  self.buf = string_sub(buf, n + 1)
  self.pos = self.pos - n
end

-- A line the scan waits on to its end -- a fence's opening line (its info
-- string), a code block's line (closing fence or not) -- or a fence's run
-- of backticks or tildes alone, was joined and searched whole again at
-- every delta: quadratic. Once such a line is long, the deltas are held in
-- a list (`held`), untouched, until one holds what decides (`held_stop`: a
-- newline; a backtick, that makes a backtick fence's line inline code; a
-- character other than the run's), then joined once.
local function hold (self)
  local s, i = self.buf, self.pos
  if #s - i < SET_ASIDE or string_find(s, "\n", i, true) then return end
  local stop = "\n"                               -- (a code block's line: its newline decides)
  if not self.fence then
    if i ~= 1 or not self.line_start then return end
    if fence_open(s, false) ~= nil then return end   -- (an opening fence's run, then its info string)
    local sp = #string_match(s, "^ *")
    local ch = string_sub(s, sp + 1, sp + 1)
    local other = ch == "~" and "[^~]" or "[^`]"
    if not string_find(s, other, sp + 1) then
      stop = other                                -- (the run alone: what follows it decides)
    elseif ch == "`" then
      stop = "[\n`]"
    end
  end
  self.held, self.held_stop = {}, stop
end

-- The held deltas joined to the buffer (the text they wait on has come, or its end).
local function unhold (self)
  self.buf = self.buf .. table_concat(self.held)
  self.held = nil
end

--- The sentences (or clauses) that `delta` completed: a list, often empty.
-- `nil` and `""` are no text (a stream callback's delta may be nil).
-- After each call, `sp.ends[k]` is true when piece k ends a sentence and
-- false when it ends only a clause; `sp.code[k]` is true when piece k is a
-- fenced code block (not for a voice: `skip_code = true` drops them).
-- @tparam string|nil delta
-- @treturn {string,...}
-- @usage for _, s in ipairs(sp:push(delta)) do bubble:add(s) end
-- (A long delta -- a whole text given to `split` -- goes in by pieces of
-- SET_ASIDE bytes: a cut copies the buffer's rest, so a megabyte of ". . ."
-- in one piece took seconds; the pieces change nothing but the time.)
function Splitter:push (delta)
  if delta ~= nil and type(delta) ~= "string" then
    util.argerror("push", 1, util.expected("string", delta))
  end
  local out = {}
  self.ends, self.code = {}, {}
  for from = 1, delta and #delta or 0, SET_ASIDE do
    local part = #delta <= SET_ASIDE and delta or string_sub(delta, from, from + SET_ASIDE - 1)
    local held = self.held
    if held and not string_find(part, self.held_stop) then
      held[#held + 1] = part
    else
      if held then unhold(self) end
      self.buf = self.buf .. part
      scan(self, false, out)
      set_aside(self)
      hold(self)
    end
  end
  return out
end

--- The rest at the end of the text: every piece still held (the last one
-- whole, though it ends with no stop). The splitter is then empty, ready
-- for another text.
-- @treturn {string,...}
function Splitter:finish ()
  local out = {}
  self.ends, self.code = {}, {}
  if self.held then unhold(self) end
  scan(self, true, out)
  if self.buf ~= "" or self.head[1] ~= nil then cut(self, #self.buf, true, out) end
  self.buf, self.pos, self.line_start, self.fence = "", 1, true, nil
  return out
end

--- The text received and not given out yet.
-- @treturn string
function Splitter:pending ()
  return table_concat(self.head) .. self.buf .. table_concat(self.held or {})
end

-- Checks `new`'s options (argument argn of fname).
local function options (opts, fname, argn)
  if opts == nil then return {} end
  if type(opts) ~= "table" then util.argerror(fname, argn, util.expected("table", opts)) end
  for k, v in pairs(opts) do
    if k == "clauses" or k == "skip_code" then
      if type(v) ~= "boolean" then util.field_error(fname, argn, "opts." .. k, util.expected("boolean", v)) end
    elseif k == "abbreviations" then
      if type(v) ~= "table" then util.field_error(fname, argn, "opts.abbreviations", util.expected("table", v)) end
      -- (a number or true where a word goes raised "sentences.lua: attempt to index a number value")
      for word, on in pairs(v) do
        if type(word) == "number" and type(on) ~= "string" then
          util.field_error(fname, argn, "opts.abbreviations[" .. word .. "]", util.expected("string", on))
        elseif type(word) ~= "number" and type(word) ~= "string" then
          util.field_error(fname, argn, "opts.abbreviations", "words (strings) expected as keys, got " .. type(word))
        end
      end
    elseif k == "max_length" then
      if type(v) ~= "number" or v < 1 or v ~= math.floor(v) then
        util.field_error(fname, argn, "opts.max_length", util.expected("a positive integer", v))
      end
    else
      util.field_error(fname, argn, "opts." .. tostring(k),
                       "unknown option (clauses, abbreviations, skip_code, max_length)")
    end
  end
  return opts
end

-- A function that makes new splitters of `opts` (checked once, here).
local function maker (opts, fname, argn)
  opts = options(opts, fname, argn)
  local abbreviations = M.ABBREVIATIONS
  if opts.abbreviations then
    abbreviations = {}
    for k in pairs(M.ABBREVIATIONS) do abbreviations[k] = true end
    for k, v in pairs(opts.abbreviations) do
      if type(k) == "number" then abbreviations[v:lower():gsub("%.$", "")] = true
      else abbreviations[k:lower():gsub("%.$", "")] = v and true or nil end
    end
  end
  local clauses, skip_code, max_length = opts.clauses or false, opts.skip_code or false, opts.max_length
  return function ()
    return setmetatable({ buf = "", pos = 1, ends = {}, code = {}, clauses = clauses, skip_code = skip_code,
                          line_start = true, fence = nil, abbreviations = abbreviations, head = {}, head_len = 0,
                          head_text = false, mid_word = false, max_length = max_length }, Splitter)
  end
end

local function new (opts, fname, argn)
  return maker(opts, fname, argn)()
end

--- A new splitter.
-- @tparam[opt] table opts `clauses` (boolean: also end pieces at `,` `;`
-- `:` `，` `、`...), `abbreviations` (a list of extra words, or a set whose
-- `false` values remove one of `ABBREVIATIONS`), `skip_code` (boolean: drop
-- fenced code blocks, which a voice should not read), `max_length` (bytes:
-- a piece that grows past it with no end is cut before its next white
-- space, or at twice it where there is none; not a code block)
-- @treturn aigc.sentences a splitter: `push(delta)`, `finish()`, `pending()`
-- @usage local sp = sentences.new { clauses = true }
function M.new (opts)
  return new(opts, "new", 1)
end

--- A whole text split at once.
-- @tparam string text
-- @tparam[opt] table opts as `new`'s
-- @treturn {string,...}
-- @usage sentences.split("Dr. Watson arrived. He sat.")  --> {"Dr. Watson arrived.", "He sat."}
function M.split (text, opts)
  if type(text) ~= "string" then util.argerror("split", 1, util.expected("string", text)) end
  local sp = new(opts, "split", 2)
  local out = sp:push(text)
  for _, s in ipairs(sp:finish()) do out[#out + 1] = s end
  return out
end

local calls = require "aigc.sentences_calls"
local check_fn = calls.check_fn

--- A stream callback that gives `on_sentence(sentence, ends_sentence, is_code)` each
-- whole piece, and a function that gives the rest (call it when the stream
-- is over: `stream` below does).
-- @tparam function on_sentence
-- @tparam[opt] table opts as `new`'s
-- @treturn function the stream callback `function (delta)`
-- @treturn function flush
-- @treturn function drop: forgets the rest (after a failure or a cancel)
-- @usage local on_delta, flush = sentences.callback(speak)
function M.callback (on_sentence, opts)
  check_fn(on_sentence, "callback", 1)
  return calls.callback(maker(opts, "callback", 2), on_sentence)
end

--- `params` with a stream callback that gives each whole sentence to
-- `on_sentence(sentence, ends_sentence, is_code)`, and the rest when the stream has
-- ended well (`on_stream_end`: before the request is done, so that the
-- last sentence's callback may still fail or cancel the call, as any
-- other sentence's): for `client:chat`, `client:chat_async`, a
-- conversation's `say` and `say_async`. A `stream` or `on_stream_end`
-- function already in `params` still runs (before this one's part);
-- after a failure or a cancel (`on_error`) the unfinished rest is dropped
-- (an NPC cut off does not finish its sentence). Each call given these
-- params splits its own text: calls at once (two NPCs sharing one config
-- table) keep their sentences apart.
-- @tparam table params (a copy is returned; `params` is not changed)
-- @tparam function on_sentence
-- @tparam[opt] table opts as `new`'s
-- @treturn table
-- @usage local req = client:chat_async(sentences.stream({ messages = msgs }, function (s) bubble:add(s) end))
function M.stream (params, on_sentence, opts)
  if type(params) ~= "table" then util.argerror("stream", 1, util.expected("table", params)) end
  check_fn(on_sentence, "stream", 2)
  return calls.stream(maker(opts, "callback", 2), params, on_sentence)
end

--- An iterator over the sentences of an iterator over deltas (`client:stream`,
-- or any function that returns the next delta, nil at the end): in a generic
-- `for`, inside a task too (the stream yields there). On Lua 5.4 the source
-- is the loop's closing value when it has one, so leaving the loop early
-- cancels the stream (elsewhere call `s:close()`). (PUC Lua 5.1 cannot yield
-- inside a generic `for`'s iterator: in a task there, call it in a while loop.)
-- @param deltas the source: callable, returns a string (or "") per chunk, nil at the end
-- @tparam[opt] table opts as `new`'s
-- @treturn function the iterator: the next sentence, whether it ends a sentence, whether it is code
-- @usage for s in sentences.iter(client:stream { messages = msgs }) do print(s) end
function M.iter (deltas, opts)
  check_fn(deltas, "iter", 1)
  local sp = new(opts, "iter", 2)
  local queue, ends, code, first, last, over = {}, {}, {}, 1, 0, false
  local function nxt ()
    while queue[first] == nil and not over do
      local delta = deltas()
      local list
      if delta == nil then
        over = true
        list = sp:finish()
      else
        list = sp:push(delta)
      end
      for k = 1, #list do
        last = last + 1
        queue[last], ends[last], code[last] = list[k], sp.ends[k], sp.code[k]
      end
    end
    local s, e, is_code = queue[first], ends[first], code[first]
    if s == nil then return nil end
    queue[first], ends[first], code[first] = nil, nil, nil
    first = first + 1
    return s, e, is_code
  end
  local mt = type(deltas) == "table" and getmetatable(deltas)
  if type(mt) == "table" and mt.__close then return nxt, nil, nil, deltas end
  return nxt
end

return M
