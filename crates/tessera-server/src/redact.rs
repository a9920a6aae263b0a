//! `Debug` for types that hold a secret (a password, a token, a session id, a
//! CSRF token, a password hash): the other fields print, the secret ones print
//! `[redacted]`, so that a `{:?}` in a log line or a panic message leaks nothing.

use std::fmt;

/// Prints `[redacted]`.
#[derive(Clone, Copy)]
pub struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `debug_redacted!(Type { shown, fields; secret, fields })` implements `Debug`.
macro_rules! debug_redacted {
    ($ty:ident { $($shown:ident),* ; $($secret:ident),+ }) => {
        impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                let _ = ($(&self.$secret,)+);
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($shown), &self.$shown))*
                    $(.field(stringify!($secret), &$crate::redact::Redacted))+
                    .finish()
            }
        }
    };
}

pub(crate) use debug_redacted;
