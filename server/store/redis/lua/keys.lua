-- esc(part): a part of a key escaped as connection.esc does ('%' and ':'), so `esc(event) .. ':' ..
-- esc(user)` is the tail of a user's keys (connection.tail).
local function esc(s)
  return (string.gsub((string.gsub(s, '%%', '%%25')), ':', '%%3A'))
end
