-- LÖVE configuration of the probe game (spec/game_probe_spec.lua): audio on
-- (the spec runs it with OpenAL Soft's null device: ALSOFT_DRIVERS=null), a
-- small window.
-- luacheck: globals love
function love.conf (t)
  t.identity = "aigc-probe"
  t.version = "11.4"
  t.window.width = 320
  t.window.height = 120
  t.window.vsync = 0
  t.modules.joystick = false
  t.modules.physics = false
  t.modules.video = false
end
