-- Browser sessions of the registrar web pages. A session stands for the API
-- token it was opened with: it ends when the token is revoked or at
-- expires_at. Only a hash of the cookie value is kept.
CREATE TABLE ui_sessions
(
    session_hash text PRIMARY KEY,
    token_id     text NOT NULL REFERENCES api_tokens (token_id),
    csrf_token   text NOT NULL,
    created_at   text NOT NULL,
    expires_at   text NOT NULL
);
CREATE INDEX ui_sessions_token ON ui_sessions (token_id);
