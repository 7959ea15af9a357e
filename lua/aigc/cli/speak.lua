--- `aigc speak "text" -o line.wav`: speech (`client:speech`) written to a
-- file as it arrives (renamed into place when complete) or to stdout.
--
-- @module aigc.cli.speak

local argparse = require "argparse"
local common = require "aigc.cli.common"

local M = {}

--- The model when `-m` names none (the API needs one).
M.DEFAULT_MODEL = "tts-1"

-- The formats of /audio/speech, which an output file's extension chooses.
local FORMATS = { mp3 = true, opus = true, aac = true, flac = true, wav = true, pcm = true }

--- The parser of `aigc speak`.
-- @treturn table argparse parser
function M.parser ()
  local p = argparse("aigc speak", "Speak a text (POST /audio/speech) into an audio file.")
  p:help_max_width(100):help_description_margin(28)
  p:epilog([[Examples:
  aigc speak "Halt! Who goes there?" -o line.wav
  aigc speak -v onyx --speed 1.2 "Rooms are free upstairs." -o inn.mp3
  echo "Welcome, traveller." | aigc speak -f wav -o - | aplay     the audio on stdout as it comes
The path written is printed.]])
  p:argument("text", "The text (words are joined; stdin, if piped, comes first)."):args("*")
  p:option("-o --output", "The file (- for stdout). Default: stdout when it is not a terminal.")
  p:option("-m --model", "The model (default " .. M.DEFAULT_MODEL .. ")."):convert(common.model_name)
  p:option("-v --voice", "The voice (alloy, echo, fable, onyx, nova, shimmer...; default alloy).")
  p:option("-f --format", "mp3, opus, aac, flac, wav or pcm (default: the file's extension, else mp3).")
  p:option("--speed", "0.25 to 4 (default 1).", nil, tonumber)
  p:option("-i --instructions", "How to speak (models that take it).")
  p:option("--option", "A request param KEY=VALUE (VALUE as JSON when it parses).")
    :count("*"):target("options")
  p:option("-e --endpoint", "A named endpoint (config file; built in: local, openai).")
  return p
end

--- Runs `aigc speak`.
-- @tparam table args
-- @treturn integer exit code
function M.run (args)
  local text = common.join_input(common.piped_stdin(), table.concat(args.text or {}, " "))
  if text == "" then common.usage("no text: give it as an argument or on stdin (aigc speak --help)") end
  local output, writer = common.binary_output(args.output, "aigc speak")
  local format = args.format
  if format == nil and output ~= "-" then
    local ext = output:match("%.(%w+)$")
    format = ext and FORMATS[ext:lower()] and ext:lower() or nil
  end
  if format ~= nil and not FORMATS[format] then
    common.usage("-f: unknown format '" .. format .. "' (mp3, opus, aac, flac, wav, pcm)")
  end
  format = format or "mp3"   -- (asked for, not left to a server's own default)

  local params = common.options_table(args.options)
  params.input, params.model, params.voice = text, args.model or params.model or M.DEFAULT_MODEL, args.voice
  params.response_format, params.speed, params.instructions = format, args.speed, args.instructions
  local wrote_err
  if output == "-" then
    params.to = function (chunk) common.out_bytes(chunk) end   -- (flushed: playable as it comes)
  elseif writer then   -- (a FIFO, a device, /dev/stdout: written as it comes, each write checked)
    params.to = function (chunk)
      local ok, why = writer:write(chunk)
      if not ok then wrote_err = "aigc: could not write " .. output .. ": " .. why; error(wrote_err, 0) end
    end
  else
    params.to = output
  end
  local client = common.client(common.config(), args.endpoint)
  local res, err, canceled = common.wait_interruptible(client, client:speech_async(params))
  client:close()
  local closed, why = true, nil
  if writer then closed, why = writer:close() end
  if not res then
    if canceled then common.fail("aigc: canceled", 130) end
    common.fail(wrote_err or common.call_error(err))
  end
  if not closed then common.fail("aigc: could not write " .. output .. ": " .. why) end
  if output ~= "-" and not writer then common.out(output .. "\n") end
  return 0
end

return M
