--- Vectors in C: cosine similarity and top-k search over a set of
-- embeddings (NPC memory, FAQ lookup). `aigc.vec`.
--
-- @usage
-- local index = aigc.vec.index()
-- for _, e in ipairs(res.data) do index:add(e.embedding) end
-- local best, scores = index:topk(query_vector, 3)   -- positions (1-based), cosines
--
-- @module aigc.vec

local core = require "aigc.core"

local M = {}

--- The cosine similarity of two vectors (lists of numbers of one length).
-- Every value must be a finite float32 (|x| <= 3.4e38): NaN, inf or a
-- larger number raises, naming the element.
-- @function cosine
-- @tparam table a
-- @tparam table b
-- @treturn number in -1..1 (0 when either is all zeros)
M.cosine = core.vec.cosine

--- A new empty index. `index:add(v)` stores a vector (normalized, as
-- float32; every vector of an index has the first one's length) and
-- returns its position; `index:topk(q, k)` returns the positions of the k
-- most similar (best first; fewer when the index has fewer) and their
-- cosines; `#index` / `index:len()`. A value of `v` or `q` that is not a
-- finite float32 (NaN, inf, beyond 3.4e38) raises, naming the element, as
-- does a `k` that is not a positive integer (1.5, inf, 0, none). An all-zero
-- vector scores 0 against everything.
-- @function index
-- @treturn userdata
M.index = core.vec.index

return M
