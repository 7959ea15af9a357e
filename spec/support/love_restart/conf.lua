-- LÖVE configuration of the restart game (spec/game_probe_spec.lua): no
-- audio, a small window.
-- luacheck: globals love
function love.conf (t)
  t.identity = "aigc-restart"
  t.version = "11.4"
  t.window.width = 160
  t.window.height = 60
  t.window.vsync = 0
  t.modules.audio = false
  t.modules.sound = false
  t.modules.joystick = false
  t.modules.physics = false
  t.modules.video = false
end
