//! The LTI 1.3 platform face: launches and deep linking (`launch/`), and
//! what a registered tool calls (`services/`: configuration and keys,
//! registration, the token endpoint, AGS and NRPS). Keys, tools, scopes and
//! the LTI state they keep are in `crate::services`.

pub mod launch;
pub mod openapi;
pub mod services;
