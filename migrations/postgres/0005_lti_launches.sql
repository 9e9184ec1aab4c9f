-- LTI launch state that must outlive one request: the message hints the SIS
-- hands out (single use, short-lived), the deep-linking requests waiting for
-- the tool's answer, and the nonces of deep-linking responses already taken.

CREATE TABLE lti_launch_hints
(
    hint             text PRIMARY KEY,
    login_hint       text NOT NULL,
    tool_id          text NOT NULL,
    course_id        text NOT NULL,
    user_id          text NOT NULL,
    kind             text NOT NULL,
    resource_link_id text,
    created_at       text NOT NULL,
    expires_at       text NOT NULL,
    used_at          text
);

CREATE TABLE lti_deep_link_requests
(
    data       text PRIMARY KEY,
    tool_id    text NOT NULL,
    course_id  text NOT NULL,
    user_id    text NOT NULL,
    nonce      text NOT NULL,
    created_at text NOT NULL,
    expires_at text NOT NULL,
    used_at    text
);

CREATE TABLE lti_deep_link_nonces
(
    tool_id    text NOT NULL,
    nonce      text NOT NULL,
    used_at    text NOT NULL,
    PRIMARY KEY (tool_id, nonce)
);
