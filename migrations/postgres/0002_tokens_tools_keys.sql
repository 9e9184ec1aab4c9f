-- Registrar API tokens: only a hash of the secret is kept.
CREATE TABLE api_tokens
(
    token_id    text PRIMARY KEY,
    name        text,
    role        text NOT NULL,
    secret_hash text NOT NULL,
    created_at  text NOT NULL,
    revoked_at  text
);

-- The platform's RSA signing keys. A retired key stays published in the
-- JWKS until retired_at plus the overlap has passed.
CREATE TABLE platform_keys
(
    kid         text PRIMARY KEY,
    private_pem text NOT NULL,
    public_jwk  text NOT NULL,
    created_at  text NOT NULL,
    retired_at  text
);

-- Registered LTI tools, one deployment each, with the rights a registrar gave.
CREATE TABLE tools
(
    tool_id          text PRIMARY KEY,
    name             text NOT NULL,
    client_id        text NOT NULL UNIQUE,
    deployment_id    text NOT NULL,
    issuer           text,
    launch_url       text,
    login_url        text,
    redirect_uris    text NOT NULL,
    jwks_url         text,
    public_jwk       text,
    deep_linking_url text,
    grading          text NOT NULL,
    roster_access    boolean NOT NULL,
    hide_names       boolean NOT NULL,
    hide_emails      boolean NOT NULL,
    registered_via   text NOT NULL,
    registration     text,
    created_at       text NOT NULL,
    updated_at       text NOT NULL,
    revoked_at       text
);
