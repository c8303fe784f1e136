//! The built-in stages, derived from the one list in `registry.rs`: the [`Builtin`] enum, each
//! stage's binary, package and `main` file, its params schema, and its code identity (computed from
//! the source at build time by `build.rs`; see the `scan-identity` crate for the rule).

use serde_json::Value;

use crate::params::{self, ParamError};
#[allow(unused_imports)] // each is named by the registry
use crate::params::{
    EmbedParams, EvalParams, ImportParams, IngestParams, KmeansParams, MineParams, PretextParams,
    ScanParams, SelflabelParams,
};

mod generated {
    include!(concat!(env!("OUT_DIR"), "/identities.rs"));
}

/// The libtorch version the build found (part of every torch stage's identity).
pub const LIBTORCH_VERSION: &str = generated::LIBTORCH;

macro_rules! builtin_stages {
    ($($variant:ident => $binary:literal, $package:literal, $main:literal, $params:ident;)*) => {
        /// A built-in stage binary.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Builtin {
            $($variant),*
        }

        impl Builtin {
            /// Every built-in stage, in registry order.
            pub const ALL: &'static [Builtin] = &[$(Builtin::$variant),*];

            /// The binary's file name (`cmd[0]` in `pipeline.toml`).
            pub fn binary(self) -> &'static str {
                match self { $(Builtin::$variant => $binary),* }
            }

            /// The workspace package that builds it.
            pub fn package(self) -> &'static str {
                match self { $(Builtin::$variant => $package),* }
            }

            /// Its `main` file, relative to the workspace root.
            pub fn main_source(self) -> &'static str {
                match self { $(Builtin::$variant => $main),* }
            }

            /// Resolve a params object against this stage's schema (defaults filled in).
            pub fn resolve_params(self, value: &Value) -> Result<Value, ParamError> {
                match self { $(Builtin::$variant => params::resolve::<$params>(value)),* }
            }
        }
    };
}
include!("../registry.rs");

impl Builtin {
    /// The built-in stage whose binary is `name`.
    pub fn from_binary(name: &str) -> Option<Builtin> {
        Builtin::ALL.iter().copied().find(|b| b.binary() == name)
    }

    /// The code identity (64 hex digits) computed from the source at build time.
    pub fn identity(self) -> &'static str {
        generated::IDENTITIES
            .iter()
            .find(|(b, _)| *b == self.binary())
            .map(|(_, id)| *id)
            .unwrap_or("unknown")
    }

    /// The registry as the identity computation takes it.
    pub fn specs() -> Vec<scan_identity::StageSpec<'static>> {
        Builtin::ALL
            .iter()
            .map(|b| scan_identity::StageSpec {
                binary: b.binary(),
                package: b.package(),
                main: b.main_source(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
