-- One-time tokens a registrar hands to a tool for dynamic registration.
-- Only a hash is kept; used_at makes each token single use.
CREATE TABLE lti_registration_tokens
(
    token_hash text PRIMARY KEY,
    created_by text NOT NULL,
    created_at text NOT NULL,
    expires_at text NOT NULL,
    used_at    text,
    tool_id    text
);

-- OAuth access tokens issued at /lti/token, hashed. The scopes are those
-- granted at issue; every request also checks the tool's current settings.
CREATE TABLE lti_access_tokens
(
    token_hash text PRIMARY KEY,
    tool_id    text NOT NULL,
    scopes     text NOT NULL,
    created_at text NOT NULL,
    expires_at text NOT NULL
);
CREATE INDEX lti_access_tokens_expiry ON lti_access_tokens (expires_at);

-- Client assertion ids already used, kept until the assertion expires, so
-- a captured assertion cannot be replayed.
CREATE TABLE lti_used_jtis
(
    client_id  text NOT NULL,
    jti        text NOT NULL,
    expires_at text NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX lti_used_jtis_expiry ON lti_used_jtis (expires_at);
