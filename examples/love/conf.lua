-- LÖVE configuration of the tavern (examples/love). No audio: the game has
-- no sound, and a headless run (xvfb-run) has no sound device.
-- luacheck: globals love
function love.conf (t)
  t.identity = "aigc-tavern"
  t.version = "11.4"
  t.window.title = "The Tipsy Kernel -- aigc in a LÖVE frame loop"
  t.window.width = 960
  t.window.height = 540
  t.window.vsync = 1
  t.modules.audio = false
  t.modules.sound = false
  t.modules.joystick = false
  t.modules.physics = false
  t.modules.video = false
end
