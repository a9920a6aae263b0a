//! `tessera key generate` and `tessera key public` (`key rotate` belongs to the server).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use tessera_jose::{Algorithm, ContentEncryption, Curve, Jwk, KeyManagement};

use super::keyfile::{Keys, load_file};
use super::{Failure, print_line};
use crate::server_cmds::RotateArgs;

/// `tessera key ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Generates a private JWK (kid = its RFC 7638 thumbprint unless --kid) on stdout.
    Generate(GenerateArgs),
    /// Prints the public JWK of a key file (JWK, JWK Set or PEM).
    Public(PublicArgs),
    /// Rotates the server's signing keys (in the database).
    Rotate(RotateArgs),
}

/// `tessera key generate`.
#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// A JWS algorithm (HS*, RS*, PS*, ES*, EdDSA) or a JWE one (dir, A*KW,
    /// RSA-OAEP, RSA-OAEP-256, ECDH-ES, ECDH-ES+A*KW).
    #[arg(long, value_name = "ALG")]
    alg: String,
    /// The key id; by default the key's RFC 7638 thumbprint.
    #[arg(long, value_name = "KID")]
    kid: Option<String>,
    /// The curve: P-256, P-384, P-521, Ed25519 or X25519, where the algorithm allows a choice.
    #[arg(long, value_name = "CRV")]
    crv: Option<String>,
    /// RSA modulus size (2048, 3072, 4096, 8192), or an HMAC secret's size in bits.
    #[arg(long, value_name = "N")]
    bits: Option<usize>,
    /// With --alg dir: the content encryption the key is for (default A256GCM).
    #[arg(long, value_name = "ENC")]
    enc: Option<String>,
}

/// `tessera key public`.
#[derive(Debug, Args)]
pub(crate) struct PublicArgs {
    /// The key file: a JWK, a JWK Set or a PEM key.
    #[arg(value_name = "KEYFILE")]
    file: PathBuf,
}

/// Runs `key generate`.
pub(crate) fn generate(args: &GenerateArgs) -> Result<(), Failure> {
    let name = args.alg.as_str();
    if args.enc.is_some() && name != "dir" {
        return Err(Failure::usage("--enc applies only to --alg dir"));
    }
    let key = if let Ok(alg) = name.parse::<Algorithm>() {
        generate_jws(alg, args)?
    } else if let Ok(alg) = name.parse::<KeyManagement>() {
        generate_jwe(alg, args)?
    } else {
        return Err(Failure::usage(format!(
            "unknown algorithm {:?}: use a JWS algorithm (HS256, RS256, PS256, ES256, EdDSA, ...) \
             or a JWE one (dir, A256KW, RSA-OAEP-256, ECDH-ES, ...)",
            short(name)
        )));
    };
    let kid = match &args.kid {
        Some(k) if k.is_empty() => return Err(Failure::usage("--kid cannot be empty")),
        Some(k) => k.clone(),
        None => key.thumbprint(),
    };
    let key = key.with_kid(kid).with_alg(name);
    print_line(&key.to_json())
}

/// Runs `key public`.
pub(crate) fn public(args: &PublicArgs) -> Result<(), Failure> {
    let oct =
        || Failure::usage("a secret (oct) key has no public part: it must never be published");
    match load_file(&args.file)? {
        Keys::One(key) => {
            let public = key.to_public().map_err(|_| oct())?;
            print_line(&public.to_json())
        }
        Keys::Set(set) => {
            if set.keys().iter().any(|k| k.secret_len().is_some()) {
                return Err(oct());
            }
            print_line(&set.to_public().to_json())
        }
    }
}

fn generate_jws(alg: Algorithm, args: &GenerateArgs) -> Result<Jwk, Failure> {
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            no_crv(args, alg.name())?;
            let need = super::keyfile::min_hmac_len(alg).unwrap_or(32);
            let len = match args.bits {
                None => need,
                Some(bits) if bits % 8 != 0 => {
                    return Err(Failure::usage("--bits for a secret is a multiple of 8"));
                }
                Some(bits) if bits / 8 < need => {
                    return Err(Failure::usage(format!(
                        "{alg} needs a secret of at least {} bits (the hash length)",
                        need * 8
                    )));
                }
                Some(bits) => bits / 8,
            };
            oct(len)
        }
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => {
            no_crv(args, alg.name())?;
            rsa(args.bits)
        }
        Algorithm::ES256 | Algorithm::ES384 | Algorithm::ES512 => {
            no_bits(args, alg.name())?;
            let crv = match alg {
                Algorithm::ES384 => Curve::P384,
                Algorithm::ES512 => Curve::P521,
                _ => Curve::P256,
            };
            if let Some(given) = &args.crv
                && given != crv.name()
            {
                return Err(Failure::usage(format!(
                    "{alg} uses the curve {crv}, not {:?}",
                    short(given)
                )));
            }
            curve(crv)
        }
        _ => {
            // EdDSA, the only other JWS algorithm.
            no_bits(args, alg.name())?;
            if let Some(given) = &args.crv
                && given != Curve::Ed25519.name()
            {
                return Err(Failure::usage(format!(
                    "{alg} uses the curve Ed25519, not {:?}",
                    short(given)
                )));
            }
            curve(Curve::Ed25519)
        }
    }
}

fn generate_jwe(alg: KeyManagement, args: &GenerateArgs) -> Result<Jwk, Failure> {
    let fixed = |len: usize| -> Result<Jwk, Failure> {
        no_crv(args, alg.name())?;
        if let Some(bits) = args.bits
            && bits != len * 8
        {
            return Err(Failure::usage(format!(
                "{alg} needs a key of exactly {} bits",
                len * 8
            )));
        }
        oct(len)
    };
    match alg {
        KeyManagement::Dir => {
            let enc = match &args.enc {
                None => ContentEncryption::A256Gcm,
                Some(e) => e.parse::<ContentEncryption>().map_err(|_| {
                    Failure::usage(format!(
                        "unknown content encryption {:?}: use A128GCM, A192GCM, A256GCM, \
                         A128CBC-HS256, A192CBC-HS384 or A256CBC-HS512",
                        short(e)
                    ))
                })?,
            };
            fixed(enc.key_len())
        }
        KeyManagement::A128KW => fixed(16),
        KeyManagement::A192KW => fixed(24),
        KeyManagement::A256KW => fixed(32),
        KeyManagement::RsaOaep | KeyManagement::RsaOaep256 => {
            no_crv(args, alg.name())?;
            rsa(args.bits)
        }
        _ => {
            // ECDH-ES and ECDH-ES+A*KW.
            no_bits(args, alg.name())?;
            let crv = match args.crv.as_deref() {
                None => Curve::P256,
                Some(c) => match c.parse::<Curve>() {
                    Ok(c @ (Curve::P256 | Curve::P384 | Curve::P521 | Curve::X25519)) => c,
                    _ => {
                        return Err(Failure::usage(format!(
                            "{alg} works on P-256, P-384, P-521 or X25519, not {:?}",
                            short(c)
                        )));
                    }
                },
            };
            curve(crv)
        }
    }
}

fn oct(len: usize) -> Result<Jwk, Failure> {
    Jwk::generate_oct(len).map_err(|e| Failure::usage(e.message().to_owned()))
}

fn rsa(bits: Option<usize>) -> Result<Jwk, Failure> {
    let bits = bits.unwrap_or(2048);
    if bits < tessera_jose::jwk::MIN_RSA_BITS {
        return Err(Failure::usage(format!(
            "RSA keys under {} bits are refused",
            tessera_jose::jwk::MIN_RSA_BITS
        )));
    }
    Jwk::generate_rsa(bits).map_err(|e| Failure::usage(e.message().to_owned()))
}

fn curve(crv: Curve) -> Result<Jwk, Failure> {
    Jwk::generate_curve(crv).map_err(|e| Failure::usage(e.message().to_owned()))
}

fn no_crv(args: &GenerateArgs, alg: &str) -> Result<(), Failure> {
    match args.crv {
        Some(_) => Err(Failure::usage(format!("--crv does not apply to {alg}"))),
        None => Ok(()),
    }
}

fn no_bits(args: &GenerateArgs, alg: &str) -> Result<(), Failure> {
    match args.bits {
        Some(_) => Err(Failure::usage(format!("--bits does not apply to {alg}"))),
        None => Ok(()),
    }
}

/// At most 40 characters of user input, for messages.
pub(crate) fn short(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
