-- LÖVE configuration of the threads game (spec/love_threads_spec.lua): no
-- audio (a headless run has no sound device), a small window.
-- luacheck: globals love
function love.conf (t)
  t.identity = "aigc-threads"
  t.version = "11.4"
  t.window.width = 320
  t.window.height = 80
  t.window.vsync = 0
  t.modules.audio = false
  t.modules.sound = false
  t.modules.joystick = false
  t.modules.physics = false
  t.modules.video = false
end
