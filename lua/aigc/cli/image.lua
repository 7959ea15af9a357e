--- `aigc image "prompt" -o out.png`: generates images
-- (`client:images_generate`) and writes them to files or stdout.
--
-- @module aigc.cli.image

local argparse = require "argparse"
local common = require "aigc.cli.common"
local core = require "aigc.core"
local media = require "aigc.media"

local M = {}

--- The parser of `aigc image`.
-- @treturn table argparse parser
function M.parser ()
  local p = argparse("aigc image", "Generate images (POST /images/generations) and write them as files.")
  p:help_max_width(100):help_description_margin(28)
  p:epilog([[Examples:
  aigc image "a knight in a tavern, pixel art" -o knight.png
  aigc image -n 3 -s 256x256 "a red door" -o door.png      door-1.png door-2.png door-3.png
  aigc image -m gpt-image-1 "a castle" -o - | display        the PNG on stdout
The paths written are printed, one a line.]])
  p:argument("prompt", "The prompt (words are joined; stdin, if piped, comes first)."):args("*")
  p:option("-o --output", "The file (- for stdout); with -n N, %d in it is the image's number, "
           .. "else -1, -2... go before the extension. Default: stdout when it is not a terminal.")
  p:option("-m --model", "The model (default: the server's, dall-e-2 on OpenAI)."):convert(common.model_name)
  p:option("-s --size", "The size, WIDTHxHEIGHT (e.g. 1024x1024).")
  p:option("-n", "Number of images (1 to 10).", nil, tonumber)
  p:option("-q --quality", "The quality (standard, hd; low, medium, high, auto).")
  p:option("--option", "A request param KEY=VALUE (VALUE as JSON when it parses).")
    :count("*"):target("options")
  p:option("-e --endpoint", "A named endpoint (config file; built in: local, openai).")
  return p
end

-- The path of image i of n: the last `%d` replaced (another `%`, as in
-- "100%done-%d.png", is part of the name), else "-i" before the extension.
local function path_of (output, i, n)
  local head, tail = output:match("^(.*)%%d(.-)$")   -- (greedy: the last %d)
  if head then return head .. i .. tail end
  if n == 1 then return output end
  local stem, ext = output:match("^(.-)(%.[%w]+)$")
  if not stem or stem:find("/$") then stem, ext = output, "" end
  return stem .. "-" .. i .. ext
end

-- Writes image i (decoded bytes, or its url downloaded through the client)
-- to `target`: a path, io.stdout, or a writer (common.binary_output's, for
-- a FIFO, a device or /dev/stdout: written as it is, each write checked).
local function write_image (client, i, item, target, name)
  local writer = type(target) == "userdata" and target or nil
  local wrote_ok, wrote_err = true, nil
  local function put (chunk)
    if target == io.stdout then common.out_bytes(chunk); return end
    if wrote_ok then wrote_ok, wrote_err = writer:write(chunk) end
    if not wrote_ok then
      wrote_err = "aigc: could not write " .. name .. ": " .. wrote_err
      error(wrote_err, 0)
    end   -- (the download stops)
  end
  if type(item.bytes) ~= "string" then
    if type(item.url) ~= "string" then common.fail("aigc: image " .. i .. " has neither bytes nor a url") end
    local to = (target == io.stdout or writer) and put or target
    -- (an HTML page there, a portal's or an expired link's: the error, not written as the image)
    local ok, err = client:download(item.url, { to = to, [media.AN_IMAGE] = i })
    if not ok then common.fail(tostring(wrote_err or err) .. " (image " .. i .. ")") end
    return
  end
  if target == io.stdout then common.out_bytes(item.bytes); return end
  if writer then
    wrote_ok, wrote_err = writer:write(item.bytes)
    if not wrote_ok then
      common.fail("aigc: could not write " .. name .. ": " .. wrote_err .. " (image " .. i .. ")")
    end
    return
  end
  -- As a url image's download and `aigc speak -o` write: to FILE.part,
  -- renamed into place when whole, its close checked (io.open's file, its
  -- close unchecked: on a full disk an image still in stdio's buffer was cut
  -- or empty, its path printed, exit 0); never over a FIFO or a device.
  local ok, why = core.media.save(target, item.bytes)
  if not ok then common.fail("aigc: " .. why .. " (image " .. i .. ")") end
end

--- The most images one call asks for (OpenAI's images endpoints take n 1..10).
M.MAX_N = 10

--- Runs `aigc image`.
-- @tparam table args
-- @treturn integer exit code
function M.run (args)
  local prompt = common.join_input(common.piped_stdin(), table.concat(args.prompt or {}, " "))
  if prompt == "" then common.usage("no prompt: give one as an argument or on stdin (aigc image --help)") end
  local n = args.n and common.positive(args.n, "-n") or 1
  -- (the API's own bound: -n 1e9 was sent, and its reply would be held whole in memory)
  if n > M.MAX_N then common.usage("-n: at most " .. M.MAX_N .. " images per call") end
  local output, writer = common.binary_output(args.output, "aigc image")
  if (output == "-" or writer) and n > 1 then
    common.usage("-o " .. output .. ": one image only (-n 1); give a file name for more")
  end

  local params = common.options_table(args.options)
  params.prompt, params.model, params.size, params.quality = prompt, args.model, args.size, args.quality
  if n > 1 then params.n = n end
  local client = common.client(common.config(), args.endpoint)
  local res, err, canceled = common.wait_interruptible(client, client:images_generate_async(params))
  if not res then
    client:close()
    if canceled then common.fail("aigc: canceled", 130) end
    common.fail(common.call_error(err))
  end
  local data = type(res.data) == "table" and res.data or {}
  if #data == 0 then client:close(); common.fail("aigc: the reply has no image") end
  for i, item in ipairs(data) do
    local target = output == "-" and io.stdout or writer or path_of(output, i, #data)
    write_image(client, i, item, target, output)
    if writer then
      local ok, why = writer:close()
      if not ok then common.fail("aigc: could not write " .. output .. ": " .. why) end
    elseif target ~= io.stdout then
      common.out(target .. "\n")
    end
  end
  client:close()
  return 0
end

return M
