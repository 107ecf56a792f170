-- Audit log: every admin action and every money decision, append-only.
-- Owned by src/audit.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    -- 'uid:<n>' (control socket peer), 'http-admin@<ip>', 'miner:<id>', 'system'
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    subject TEXT    NOT NULL,
    detail  TEXT    NOT NULL
);
