--- ECMA-262 regular expressions (JSON Schema's `pattern` and
-- `patternProperties`) matched in linear time. Part of `aigc.schema`.
--
-- Supported: literals (any character), `.`, classes (`[a-z]`, `[^...]`,
-- `\d \D \w \W \s \S` in and out of them), escapes (`\t \n \r \v \f \0`,
-- `\xHH`, `\uHHHH`, `\u{H...}`, `\cX`, punctuation), alternation `|`,
-- groups `(...)`, `(?:...)`, `(?<name>...)`, quantifiers `* + ? {n} {n,}
-- {n,m}` (lazy or not: the same strings match), `^`, `$`, `\b`, `\B`.
-- Strings are matched per character (code point), as with the `u` flag.
-- Not supported (`compile` says so; such a regex is left unchecked, never
-- checked wrongly): lookaround, backreferences, `\p{...}`, other escapes,
-- and a regex too large once its repeats are expanded.
--
-- The regex becomes a Thompson automaton run as a lazily built DFA: each
-- character of the string costs one table look-up once its state is known
-- and at most the automaton's size otherwise. No backtracking: the work is
-- bounded by the string's length times the regex's size (after its counted
-- repeats are expanded, at most MAX_PROGRAM steps), and the steps spent
-- building states by a budget (MAX_WORK) shared by one validation's checks.
--
-- Internal: not part of the API.
--
-- @module aigc.schema_regex
-- @local

local util = require "aigc.util"

local error, getmetatable, ipairs, pairs, pcall, setmetatable, tonumber, type =
  error, getmetatable, ipairs, pairs, pcall, setmetatable, tonumber, type
local string_byte, string_format, string_char = string.byte, string.format, string.char
local math_floor = math.floor
local table_concat, table_sort = table.concat, table.sort
util.own_module()

local M = {}

--- The most automaton steps a regex may expand to (`a{1000}` is 1,000).
M.MAX_PROGRAM = 50000
--- The deepest groups may nest.
M.MAX_NESTING = 100
--- The most DFA states kept per regex before the cache starts again.
M.MAX_STATES = 2000
--- The most automaton places those states may hold together (a state of
-- a large regex holds thousands): the cache is kept with its schema, so
-- it must stay small.
M.MAX_CACHED = 100000
--- The most automaton steps spent building DFA states for one check (a
-- `validate`, or one call of a matcher given no budget): a regex whose DFA
-- needs a new state at nearly every character costs the string's length
-- times the regex's size, minutes for a long string and a large regex. Past
-- it, the strings left are unchecked (the matcher answers nil).
M.MAX_WORK = 1000000

local Fail = {}
local function fail (fmt, ...) error(setmetatable({ message = string_format(fmt, ...) }, Fail), 0) end
-- A valid regex the matcher cannot check exactly: left unchecked (the
-- server, which has the whole of ECMA's regexes, still holds to it), not
-- refused: a schema a server takes must not become a misuse here.
local function beyond (fmt, ...)
  error(setmetatable({ message = string_format(fmt, ...), unchecked = true }, Fail), 0)
end
local function too_large ()
  beyond("is too large to check (more than %d steps once its repeats are expanded)", M.MAX_PROGRAM)
end

-- {======================================================
-- Parsing (the regex is a list of code points)
-- =======================================================

local function codepoints (re)
  local out, i, n = {}, 1, #re
  while i <= n do
    local c = string_byte(re, i)
    local len, cp = 1, c
    if c >= 0xF0 then len, cp = 4, c - 0xF0 elseif c >= 0xE0 then len, cp = 3, c - 0xE0
    elseif c >= 0xC0 then len, cp = 2, c - 0xC0 elseif c >= 0x80 then fail("is not valid UTF-8") end
    for k = i + 1, i + len - 1 do
      local b = string_byte(re, k)
      if b == nil or b < 0x80 or b > 0xBF then fail("is not valid UTF-8") end
      cp = cp * 64 + b - 0x80
    end
    out[#out + 1] = cp
    i = i + len
  end
  return out
end

local function R (...) return { ranges = { ... } } end
local DIGIT = R(48, 57)
local WORD = R(48, 57, 65, 90, 95, 95, 97, 122)
-- ECMA's white space and line terminators
local SPACE = R(9, 13, 32, 32, 0xA0, 0xA0, 0x1680, 0x1680, 0x2000, 0x200A, 0x2028, 0x2029, 0x202F, 0x202F,
                0x205F, 0x205F, 0x3000, 0x3000, 0xFEFF, 0xFEFF)
local DOT = { neg = true, ranges = { 10, 10, 13, 13, 0x2028, 0x2029 } }
local CLASS_ESC = { d = DIGIT, w = WORD, s = SPACE, D = { neg = true, subs = { DIGIT } },
                    W = { neg = true, subs = { WORD } }, S = { neg = true, subs = { SPACE } } }
local CHAR_ESC = { t = 9, n = 10, v = 11, f = 12, r = 13 }

local function cp_at (P, i) return P.cps[i] end
local function ch (P, i) local c = P.cps[i]; return c and c < 128 and string_char(c) or nil end

local function hex_digits (P, i, n)   -- the value of n hex digits at i, or nil
  local v = 0
  for k = i, i + n - 1 do
    local c = ch(P, k)
    local d = c and tonumber(c, 16)
    if d == nil then return nil end
    v = v * 16 + d
  end
  return v
end

-- The escape at P.i (just after the backslash): a class (a table) or a
-- code point; the index after it. `in_class`: \b is a backspace there.
local function escape (P, i, in_class)
  local c = ch(P, i)
  if c == nil then
    if cp_at(P, i) == nil then fail("is not a valid regular expression (it ends with \\)") end
    beyond("uses an escaped non-ASCII character, which is not supported")
  end
  if CLASS_ESC[c] then return CLASS_ESC[c], i + 1 end
  if CHAR_ESC[c] then return CHAR_ESC[c], i + 1 end
  if c == "0" and not (ch(P, i + 1) or ""):find("^%d$") then return 0, i + 1 end
  if in_class and c == "b" then return 8, i + 1 end
  if c == "c" and (ch(P, i + 1) or ""):find("^%a$") then return cp_at(P, i + 1) % 32, i + 2 end
  if c == "x" then
    local v = hex_digits(P, i + 1, 2)
    if v then return v, i + 3 end
  elseif c == "u" then
    if ch(P, i + 1) == "{" then
      local k, v = i + 2, 0
      while ch(P, k) and tonumber(ch(P, k), 16) do v = v * 16 + tonumber(ch(P, k), 16); k = k + 1 end
      if ch(P, k) == "}" and k > i + 2 and v <= 0x10FFFF then return v, k + 1 end
    else
      local v = hex_digits(P, i + 1, 4)
      if v and v >= 0xD800 and v <= 0xDBFF and ch(P, i + 5) == "\\" and ch(P, i + 6) == "u" then
        local lo = hex_digits(P, i + 7, 4)   -- (a surrogate pair: one character)
        if lo and lo >= 0xDC00 and lo <= 0xDFFF then return 0x10000 + (v - 0xD800) * 1024 + lo - 0xDC00, i + 11 end
      end
      if v then return v, i + 5 end
    end
  elseif c:find("^%p$") then
    return cp_at(P, i), i + 1
  elseif c:find("^[1-9]$") or c == "k" then
    beyond("uses a backreference (\\%s), which is not supported", c)
  elseif c == "p" or c == "P" then
    beyond("uses a Unicode property (\\%s{...}), which is not supported", c)
  end
  beyond("uses the escape \\%s, which is not supported", c)
end

local function parse_class (P, i)   -- at the "[": the class and the index after the "]"
  local cls = { ranges = {}, subs = {} }
  i = i + 1
  if ch(P, i) == "^" then cls.neg = true; i = i + 1 end
  local function atom ()
    local c = cp_at(P, i)
    if c == nil then fail("is not a valid regular expression (a [ is not closed)") end
    if c == 92 then   -- "\"
      local v
      v, i = escape(P, i + 1, true)
      return v
    end
    i = i + 1
    return c
  end
  while ch(P, i) ~= "]" do
    local a = atom()
    if ch(P, i) == "-" and ch(P, i + 1) ~= "]" and cp_at(P, i + 1) ~= nil then
      i = i + 1
      local b = atom()
      if type(a) == "table" or type(b) == "table" then   -- ([\w-.]: the three, "-" itself, as ECMA reads it)
        for _, x in ipairs { a, 45, b } do
          if type(x) == "table" then cls.subs[#cls.subs + 1] = x
          else cls.ranges[#cls.ranges + 1] = x; cls.ranges[#cls.ranges + 1] = x end
        end
      else
        if b < a then fail("is not a valid regular expression (a range out of order)") end
        cls.ranges[#cls.ranges + 1] = a; cls.ranges[#cls.ranges + 1] = b
      end
    elseif type(a) == "table" then
      cls.subs[#cls.subs + 1] = a
    else
      cls.ranges[#cls.ranges + 1] = a; cls.ranges[#cls.ranges + 1] = a
    end
  end
  return cls, i + 1
end

local parse_alt   -- forward

-- One atom at P.i: a node, or nil at the end of a sequence.
local function parse_atom (P)
  local i, c = P.i, ch(P, P.i)
  local cp = cp_at(P, i)
  if cp == nil or c == "|" or c == ")" then return nil end
  if c == "(" then
    local j = i + 1
    if ch(P, j) == "?" then
      local k = ch(P, j + 1)
      if k == ":" then j = j + 2
      elseif k == "<" and ch(P, j + 2) ~= "=" and ch(P, j + 2) ~= "!" then
        while cp_at(P, j) and ch(P, j) ~= ">" do j = j + 1 end
        j = j + 1
      elseif k == "=" or k == "!" or k == "<" then beyond("uses lookaround (?%s...), which is not supported", k)
      else fail("is not a valid regular expression (an unknown group (?%s...))", k or "") end
    end
    P.i = j
    if P.depth >= M.MAX_NESTING then beyond("nests groups deeper than %d levels", M.MAX_NESTING) end
    P.depth = P.depth + 1
    local node = parse_alt(P)
    P.depth = P.depth - 1
    if ch(P, P.i) ~= ")" then fail("is not a valid regular expression (a ( is not closed)") end
    P.i = P.i + 1
    return node
  elseif c == "[" then
    local cls, j = parse_class(P, i)
    P.i = j
    return { t = "set", cls = cls }
  elseif c == "\\" then
    local e = ch(P, i + 1)
    if e == "b" or e == "B" then P.i = i + 2; return { t = "assert", kind = e } end
    local v, j = escape(P, i + 1, false)
    P.i = j
    return { t = "set", cls = type(v) == "table" and v or R(v, v) }
  elseif c == "^" or c == "$" then
    P.i = i + 1
    return { t = "assert", kind = c }
  elseif c == "." then
    P.i = i + 1
    return { t = "set", cls = DOT }
  elseif c == "*" or c == "+" or c == "?" then
    fail("is not a valid regular expression (nothing to repeat before %s)", c)
  end
  P.i = i + 1   -- (a "{" that starts no quantifier, "]", "}": themselves)
  return { t = "set", cls = R(cp, cp) }
end

-- A quantifier at P.i: lo, hi (nil: no bound), or nil when there is none.
local function parse_quantifier (P)
  local i, c = P.i, ch(P, P.i)
  local lo, hi
  if c == "*" then lo, hi, i = 0, nil, i + 1
  elseif c == "+" then lo, hi, i = 1, nil, i + 1
  elseif c == "?" then lo, hi, i = 0, 1, i + 1
  elseif c == "{" then
    local text, k = {}, i + 1
    while ch(P, k) and ch(P, k) ~= "}" and #text < 30 do text[#text + 1] = ch(P, k); k = k + 1 end
    local a, comma, b = table_concat(text):match("^(%d+)(,?)(%d*)$")
    if a == nil or ch(P, k) ~= "}" then return nil end   -- (a literal "{")
    lo = tonumber(a)
    hi = comma == "" and lo or (b ~= "" and tonumber(b) or nil)
    if hi and hi < lo then
      fail("is not a valid regular expression (numbers out of order in {%s})", table_concat(text))
    end
    -- (a count the automaton cannot hold; also bounds the repeats of an empty group, which add no step)
    if lo > M.MAX_PROGRAM or (hi or 0) > M.MAX_PROGRAM then too_large() end
    i = k + 1
  else
    return nil
  end
  if ch(P, i) == "?" then i = i + 1 end   -- (lazy: the same strings match)
  P.i = i
  return lo, hi
end

local function parse_seq (P)
  local list = {}
  while true do
    local node = parse_atom(P)
    if node == nil then break end
    local lo, hi = parse_quantifier(P)
    if lo then
      if node.t == "assert" then fail("is not a valid regular expression (nothing to repeat)") end
      node = { t = "rep", node = node, lo = lo, hi = hi }
      if parse_quantifier(P) then fail("is not a valid regular expression (nothing to repeat)") end
    end
    list[#list + 1] = node
  end
  return { t = "cat", list = list }
end

function parse_alt (P)
  local list = { parse_seq(P) }
  while ch(P, P.i) == "|" do
    P.i = P.i + 1
    list[#list + 1] = parse_seq(P)
  end
  return #list == 1 and list[1] or { t = "alt", list = list }
end

-- }======================================================

-- {======================================================
-- The automaton: op[pc] is "char" (cls[pc]), "split" (to x[pc] and y[pc]),
-- "jmp" (to x[pc]), "assert" (kind[pc]) or "match".
-- =======================================================

local function emit (prog, op, a, b)
  local pc = #prog.op + 1
  if pc > M.MAX_PROGRAM then too_large() end
  prog.op[pc], prog.x[pc], prog.y[pc] = op, a, b
  return pc
end

local function gen (prog, node)
  local t = node.t
  if t == "set" then emit(prog, "char", node.cls)
  elseif t == "assert" then emit(prog, "assert", node.kind)
  elseif t == "cat" then for _, sub in ipairs(node.list) do gen(prog, sub) end
  elseif t == "alt" then
    local jumps = {}
    for k, sub in ipairs(node.list) do
      if k < #node.list then
        local split = emit(prog, "split", 0, 0)
        prog.x[split] = split + 1
        gen(prog, sub)
        jumps[#jumps + 1] = emit(prog, "jmp", 0)
        prog.y[split] = #prog.op + 1
      else
        gen(prog, sub)
      end
    end
    for _, j in ipairs(jumps) do prog.x[j] = #prog.op + 1 end
  else   -- rep
    for _ = 1, node.lo do gen(prog, node.node) end
    if node.hi == nil then
      local split = emit(prog, "split", 0, 0)
      prog.x[split] = split + 1
      gen(prog, node.node)
      emit(prog, "jmp", split)
      prog.y[split] = #prog.op + 1
    else
      local splits = {}
      for _ = node.lo + 1, node.hi do
        local split = emit(prog, "split", 0, 0)
        prog.x[split] = split + 1
        splits[#splits + 1] = split
        gen(prog, node.node)
      end
      for _, s in ipairs(splits) do prog.y[s] = #prog.op + 1 end
    end
  end
end

local function in_class (cls, cp)
  local r, hit = cls.ranges, false
  if r then
    for k = 1, #r, 2 do
      if cp >= r[k] and cp <= r[k + 1] then hit = true; break end
    end
  end
  if not hit and cls.subs then
    for _, sub in ipairs(cls.subs) do
      if in_class(sub, cp) then hit = true; break end
    end
  end
  if cls.neg then return not hit end
  return hit
end

local function add_bounds (cls, set)
  for k = 1, #(cls.ranges or {}), 2 do set[cls.ranges[k]] = true; set[cls.ranges[k + 1] + 1] = true end
  for _, sub in ipairs(cls.subs or {}) do add_bounds(sub, set) end
end

-- The alphabet: code points split into intervals that every class of the
-- automaton (and \b's word characters) treats alike; the DFA steps on
-- interval numbers, so a string of many different characters does not
-- make as many different steps.
local function alphabet (prog)
  local set = {}
  add_bounds(WORD, set)
  for pc, op in ipairs(prog.op) do
    if op == "char" then add_bounds(prog.x[pc], set) end
  end
  local bounds = {}
  for b in pairs(set) do if b > 0 then bounds[#bounds + 1] = b end end
  table_sort(bounds)
  table.insert(bounds, 1, 0)
  prog.bounds = bounds
  local ascii, k = {}, 1
  for cp = 0, 127 do
    while bounds[k + 1] and bounds[k + 1] <= cp do k = k + 1 end
    ascii[cp] = k
  end
  prog.ascii = ascii
end

-- }======================================================

-- {======================================================
-- Matching: the DFA, built as the strings need it
-- =======================================================

-- The characters reached from the places `pcs` without reading one (the
-- assertions decided by where that is), or nil and true when the end of
-- the regex is reached.
local function closure (prog, pcs, at_start, at_end, prev_word, next_word)
  local op, x, y = prog.op, prog.x, prog.y
  local seen, stack, chars, work = {}, {}, {}, 0
  for k = #pcs, 1, -1 do stack[#stack + 1] = pcs[k] end
  while stack[1] ~= nil do
    local pc = stack[#stack]
    stack[#stack] = nil
    if not seen[pc] then
      seen[pc] = true
      work = work + 1
      local o = op[pc]
      if o == "char" then chars[#chars + 1] = pc
      elseif o == "match" then prog.work = prog.work + work; return nil, true
      elseif o == "jmp" then stack[#stack + 1] = x[pc]
      elseif o == "split" then stack[#stack + 1] = y[pc]; stack[#stack + 1] = x[pc]
      else
        local kind = x[pc]
        if (kind == "^" and at_start) or (kind == "$" and at_end) or (kind == "b" and prev_word ~= next_word)
           or (kind == "B" and prev_word == next_word) then stack[#stack + 1] = pc + 1 end
      end
    end
  end
  prog.work = prog.work + work
  return chars, false
end

-- The DFA state for the places `pcs` (a set: made canonical by sorting).
local function intern (dfa, pcs, prev_word, at_start)
  table_sort(pcs)
  local key = table_concat(pcs, ",") .. (prev_word and "w" or "") .. (at_start and "^" or "")
  local st = dfa.states[key]
  if st then return st end
  if dfa.count >= M.MAX_STATES or dfa.size >= M.MAX_CACHED then   -- (start again: memory stays bounded)
    dfa.states, dfa.count, dfa.size, dfa.start = {}, 0, 0, nil
  end
  st = { pcs = pcs, prev_word = prev_word, at_start = at_start, trans = {} }
  dfa.states[key] = st
  dfa.count, dfa.size = dfa.count + 1, dfa.size + #pcs
  return st
end

-- The state after reading a character of interval k from state st, or
-- true when the regex matched before it.
local function step (prog, dfa, st, k)
  local rep = prog.bounds[k]
  local word = in_class(WORD, rep)
  local chars, matched = closure(prog, st.pcs, st.at_start, false, st.prev_word, word)
  if matched then st.trans[k] = true; return true end
  local nxt, seen, member, x = {}, {}, prog.member, prog.x
  for _, pc in ipairs(chars) do
    local m = member[pc]
    if m == nil then m = {}; member[pc] = m end
    local hit = m[k]
    if hit == nil then hit = in_class(x[pc], rep); m[k] = hit end
    if hit and not seen[pc + 1] then seen[pc + 1] = true; nxt[#nxt + 1] = pc + 1 end
  end
  if not seen[1] then nxt[#nxt + 1] = 1 end   -- (a search: a match may start at any character)
  local to = intern(dfa, nxt, word, false)
  st.trans[k] = to
  return to
end

-- The code point at s[i] (lead byte c >= 0x80) and the index after it; a
-- byte that starts no UTF-8 character is one character of its own, that
-- only `.` and negated classes match.
local function decode (s, i, c)
  local len, cp
  if c >= 0xF0 and c <= 0xF4 then len, cp = 4, c - 0xF0
  elseif c >= 0xE0 and c <= 0xEF then len, cp = 3, c - 0xE0
  elseif c >= 0xC2 and c <= 0xDF then len, cp = 2, c - 0xC0
  else return 0xDC00 + c, i + 1 end
  for k = i + 1, i + len - 1 do
    local b = string_byte(s, k)
    if b == nil or b < 0x80 or b > 0xBF then return 0xDC00 + c, i + 1 end
    cp = cp * 64 + b - 0x80
  end
  return cp, i + len
end

local function interval_of (bounds, cp)   -- the largest k with bounds[k] <= cp
  local lo, hi = 1, #bounds
  while lo < hi do
    local mid = math_floor((lo + hi + 1) / 2)
    if bounds[mid] <= cp then lo = mid else hi = mid - 1 end
  end
  return lo
end

local function matcher (prog)
  local dfa = { states = {}, count = 0, size = 0 }
  local ascii, bounds = prog.ascii, prog.bounds
  return function (s, budget)
    budget = budget or { left = M.MAX_WORK }
    if budget.left <= 0 then return nil end
    prog.work = 0
    local st = dfa.start
    if st == nil then st = intern(dfa, { 1 }, false, true); dfa.start = st end
    local i, n = 1, #s
    while i <= n do
      local c = string_byte(s, i)
      local k
      if c < 0x80 then
        k, i = ascii[c], i + 1
      else
        local cp
        cp, i = decode(s, i, c)
        k = interval_of(bounds, cp)
      end
      local to = st.trans[k]
      if to == nil then
        to = step(prog, dfa, st, k)
        -- (each state built costs up to the regex's size: counted; a known one costs nothing)
        if prog.work >= budget.left then budget.left = 0; return nil end
      end
      if to == true then budget.left = budget.left - prog.work; return true end
      st = to
    end
    if st.final == nil then
      local _, m = closure(prog, st.pcs, st.at_start, true, st.prev_word, false)
      st.final = m
    end
    budget.left = budget.left - prog.work
    return st.final
  end
end

--- A function `(s, budget) -> boolean|nil` that tells whether the regex
-- matches in the string (searching, as JSON Schema's regexes do: `^` and
-- `$` anchor), nil when that would cost more than `budget.left` steps
-- (a table `{left = n}` the call spends; default: a fresh MAX_WORK),
-- or nil and why not: "is not a valid regular expression (...)", "uses
-- lookaround (?=...), which is not supported"..., and whether the regex is
-- valid but beyond the matcher (unsupported, too large: left unchecked).
-- @tparam string re
-- @treturn function|nil
-- @treturn[opt] string
-- @treturn[opt] boolean
function M.compile (re)
  local ok, prog = pcall(function ()
    local P = { cps = codepoints(re), i = 1, depth = 0 }
    local tree = parse_alt(P)
    if P.i <= #P.cps then fail("is not a valid regular expression (a ) is not opened)") end
    local prog = { op = {}, x = {}, y = {}, member = {} }
    gen(prog, tree)
    emit(prog, "match")
    alphabet(prog)
    return prog
  end)
  if ok then return matcher(prog) end
  if getmetatable(prog) == Fail then return nil, prog.message, prog.unchecked or false end
  error(prog, 0)
end

return M
