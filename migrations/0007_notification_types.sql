-- Notification types are declared by the notification policy in Lua
-- (scripts/policies/notifications.lua, M.types) and checked when the scripts
-- load, so an operator can add one without a migration. The database keeps
-- only the shape every declared type must have (lib.notify checks the same).
ALTER TABLE notifications DROP CONSTRAINT notifications_type_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_type_check
    CHECK (type ~ '^[a-z][a-z0-9_]{0,62}$');
