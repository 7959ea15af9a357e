--- The words `aigc.sentences`' rules know: titles and abbreviations a dot
-- does not end a sentence after, words that open one after initials, German
-- ordinals and months. `aigc.sentences` gives out these very tables
-- (`sentences.ABBREVIATIONS`...): add to them there for your game's own.
--
-- Internal: `aigc.sentences`'. Not part of the API.
--
-- @module aigc.sentences_words
-- @local

local util = require "aigc.util"

util.own_module()

local M = {}

--- Words that a single `.` never ends a sentence after (lower case, without
-- the dot): titles and Latin abbreviations that always go on. Add to it
-- (or pass `abbreviations` to `new`) for your game's own.
M.ABBREVIATIONS = {
  dr = true, mr = true, mrs = true, ms = true, prof = true, st = true, sr = true, jr = true,
  capt = true, gen = true, lt = true, col = true, sgt = true, rev = true, hon = true,
  mt = true, ft = true, fig = true, vs = true, ["e.g"] = true, ["i.e"] = true, cf = true,
  viz = true, approx = true, lit = true,
}

--- Words that a single `.` does not end a sentence after when a number
-- follows (`Order No. 4411`, `p. 12`, `vol. 3`, `ext. 204`), though they
-- may end one otherwise (`I said no. Then`). Add to it for your own.
M.BEFORE_NUMBERS = {
  no = true, nos = true, nr = true, p = true, pp = true, vol = true, ch = true, art = true, sec = true,
  ext = true, tel = true, op = true, para = true, pt = true, ca = true,
}

--- Words that open a sentence after capitals joined by dots (`U.S.`,
-- `D.C.`), which go on before any other (`the U.S. Army`). As written:
-- `IT` is not `It`.
M.AFTER_INITIALS = {
  I = true, He = true, She = true, It = true, We = true, They = true, You = true, The = true, This = true,
  That = true, There = true, Then = true, But = true, So = true, Now = true, Yes = true, No = true,
}

--- German ordinals: a number and `.` before a capital go on after these
-- words (`am 3. Mai`, `der 1. Platz`, `zum 100. Geburtstag`; lower case,
-- any capitalisation matches), and before a month's name (`3. Mai`,
-- `24. Dezember`, `1. Okt.`). A number that ends a sentence elsewhere
-- still does (`I have 3. Then`, `Ich habe 3. Dann`).
M.BEFORE_ORDINALS = {
  der = true, die = true, das = true, den = true, dem = true, des = true, am = true, im = true,
  zum = true, zur = true, vom = true, beim = true,
}
M.MONTHS = {
  januar = true, ["j\195\164nner"] = true, februar = true, ["m\195\164rz"] = true, april = true, mai = true,
  juni = true, juli = true, august = true, september = true, oktober = true, november = true, dezember = true,
  jan = true, feb = true, ["m\195\164r"] = true, apr = true, jun = true, jul = true, aug = true, sep = true,
  sept = true, okt = true, nov = true, dez = true,
}

return M
