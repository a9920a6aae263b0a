//! `tessera token sign | verify | decode | encrypt | decrypt`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tessera_jose::jwe::{self, Decrypter, EncryptOptions};
use tessera_jose::jws::{DEFAULT_MAX_SIZE, Header};
use tessera_jose::jwt::{self, Claims, NumericDate, Validation};
use tessera_jose::{
    Algorithm, ContentEncryption, Curve, ErrorKind, Jwk, JwkSet, KeyManagement, KeyType,
};

use super::duration;
use super::key::short;
use super::keyfile::{
    KeyArgs, Keys, describe, no_signature_algorithm, refusal, signature_algorithms,
};
use super::{Failure, print_line, read_bounded, read_file, token_arg, write_stdout};

/// The largest `--claims @FILE` read.
const MAX_CLAIMS_FILE: u64 = 1024 * 1024;
/// The largest payload `encrypt` reads.
const MAX_PAYLOAD: u64 = 16 * 1024 * 1024;

/// `tessera token ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Signs a JWT and prints it (compact, one line).
    Sign(SignArgs),
    /// Verifies a JWT and prints its claims as JSON; exit 1 if it is refused.
    Verify(VerifyArgs),
    /// Prints a token's header and payload WITHOUT verifying anything.
    Decode(DecodeArgs),
    /// Encrypts a payload (a file or stdin) into a compact JWE.
    Encrypt(EncryptArgs),
    /// Decrypts a compact JWE and writes its plaintext bytes as they are.
    Decrypt(DecryptArgs),
}

/// `tessera token sign`.
#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The algorithm; by default the key's `alg`, else RS256 / the ES of the curve /
    /// EdDSA / HS256.
    #[arg(long, value_name = "ALG", value_parser = parse_alg)]
    alg: Option<Algorithm>,
    /// The header's kid (by default the key's); with a JWK Set, also chooses the key.
    #[arg(long, value_name = "KID")]
    kid: Option<String>,
    /// The claims: a JSON object, or @FILE holding one. Flags win over its members;
    /// `iat` is added (now) unless present.
    #[arg(long, value_name = "JSON|@FILE")]
    claims: Option<String>,
    /// The subject (`sub`).
    #[arg(long, value_name = "S")]
    sub: Option<String>,
    /// The issuer (`iss`).
    #[arg(long, value_name = "I")]
    iss: Option<String>,
    /// An audience (`aud`); once gives a string, repeated an array.
    #[arg(long, value_name = "A")]
    aud: Vec<String>,
    /// Expires this long after now (`exp`): seconds, or a number with s, m, h or d.
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    exp: Option<u64>,
}

/// `tessera token verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Accept only this algorithm (repeatable); it must be one the key can verify.
    #[arg(long, value_name = "ALG", value_parser = parse_alg)]
    alg: Vec<Algorithm>,
    /// Accept only this issuer (repeatable; any one matches).
    #[arg(long, value_name = "I")]
    iss: Vec<String>,
    /// Accept only tokens for this audience (repeatable; any one matches).
    #[arg(long, value_name = "A")]
    aud: Vec<String>,
    /// Tolerated clock skew for exp, nbf and iat.
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    leeway: Option<u64>,
    /// Accept a token without `exp` (an `exp` that is present is still checked).
    #[arg(long = "no-exp")]
    no_exp: bool,
    /// The largest token accepted, in bytes (default 65536).
    #[arg(long = "max-size", value_name = "BYTES")]
    max_size: Option<usize>,
    /// The token, or - to read it from standard input.
    #[arg(value_name = "TOKEN|-")]
    token: String,
}

/// `tessera token decode`.
#[derive(Debug, Args)]
pub(crate) struct DecodeArgs {
    /// The token, or - to read it from standard input.
    #[arg(value_name = "TOKEN|-")]
    token: String,
}

/// `tessera token encrypt`.
#[derive(Debug, Args)]
pub(crate) struct EncryptArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The key management algorithm: dir, A128KW, A192KW, A256KW, RSA-OAEP,
    /// RSA-OAEP-256, ECDH-ES, ECDH-ES+A128KW, ECDH-ES+A192KW, ECDH-ES+A256KW.
    #[arg(long, value_name = "ALG", value_parser = parse_key_management)]
    alg: KeyManagement,
    /// The content encryption: A128GCM, A192GCM, A256GCM, A128CBC-HS256,
    /// A192CBC-HS384, A256CBC-HS512.
    #[arg(long, value_name = "ENC", value_parser = parse_enc)]
    enc: ContentEncryption,
    /// The header's kid (by default the key's); with a JWK Set, also chooses the key.
    #[arg(long, value_name = "KID")]
    kid: Option<String>,
    /// The payload file, or - (the default) for standard input. A compact JWS is
    /// encrypted as a nested JWT (cty: JWT), trailing whitespace removed.
    #[arg(value_name = "PAYLOAD_FILE|-")]
    payload: Option<PathBuf>,
}

/// `tessera token decrypt`.
#[derive(Debug, Args)]
pub(crate) struct DecryptArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The largest token accepted, in bytes (default 65536).
    #[arg(long = "max-size", value_name = "BYTES")]
    max_size: Option<usize>,
    /// The JWE, or - to read it from standard input.
    #[arg(value_name = "TOKEN|-")]
    token: String,
}

/// Runs a `token` subcommand.
pub(crate) fn run(cmd: &TokenCommand) -> Result<(), Failure> {
    match cmd {
        TokenCommand::Sign(a) => sign(a),
        TokenCommand::Verify(a) => verify(a),
        TokenCommand::Decode(a) => decode(a),
        TokenCommand::Encrypt(a) => encrypt(a),
        TokenCommand::Decrypt(a) => decrypt(a),
    }
}

fn sign(args: &SignArgs) -> Result<(), Failure> {
    let keys = args.key.load()?;
    let key = match &keys {
        Keys::One(k) => k,
        Keys::Set(set) => signing_key(set, args.kid.as_deref())?,
    };
    if !key.is_private() {
        return Err(Failure::usage(format!(
            "the key is the public half of {}: signing needs the private key",
            describe(key)
        )));
    }
    let alg = match args.alg {
        Some(a) => a,
        None => key
            .default_algorithm()
            .map_err(|_| Failure::usage(no_signature_algorithm(key)))?,
    };
    if let Some(why) = refusal(key, alg) {
        return Err(Failure::usage(why));
    }

    let mut claims = match &args.claims {
        Some(text) => claims_arg(text)?,
        None => Map::new(),
    };
    let now = NumericDate::now().0;
    claims.entry("iat").or_insert_with(|| now.into());
    if let Some(s) = &args.sub {
        claims.insert("sub".into(), s.clone().into());
    }
    if let Some(i) = &args.iss {
        claims.insert("iss".into(), i.clone().into());
    }
    match args.aud.as_slice() {
        [] => {}
        [one] => {
            claims.insert("aud".into(), one.clone().into());
        }
        many => {
            claims.insert("aud".into(), many.to_vec().into());
        }
    }
    if let Some(secs) = args.exp {
        // `duration::parse` keeps durations within i64.
        let exp = i64::try_from(secs)
            .ok()
            .and_then(|s| now.checked_add(s))
            .ok_or_else(|| Failure::usage("--exp is too far in the future"))?;
        claims.insert("exp".into(), exp.into());
    }
    let claims = Value::Object(claims);
    // Refuse registered claims of the wrong JSON type now rather than at verify time.
    serde_json::from_value::<Claims>(claims.clone())
        .map_err(|e| Failure::usage(format!("the claims are invalid: {e}")))?;

    let mut header = Header::new(alg).with_typ("JWT");
    if let Some(kid) = args.kid.as_deref().or(key.kid()) {
        header = header.with_kid(kid);
    }
    let token = jwt::encode(&header, &claims, key).map_err(|e| match e.kind() {
        ErrorKind::Crypto => Failure::token(format!("signing failed: {}", e.message())),
        _ => Failure::usage(format!("cannot sign: {}", e.message())),
    })?;
    print_line(&token)
}

fn verify(args: &VerifyArgs) -> Result<(), Failure> {
    let keys = args.key.load()?;
    let possible = match &keys {
        Keys::One(k) => {
            let algs = signature_algorithms(k);
            if algs.is_empty() {
                return Err(Failure::usage(no_signature_algorithm(k)));
            }
            algs
        }
        Keys::Set(set) => {
            let mut algs: Vec<Algorithm> = Vec::new();
            for a in set.keys().iter().flat_map(signature_algorithms) {
                if !algs.contains(&a) {
                    algs.push(a);
                }
            }
            if algs.is_empty() {
                return Err(Failure::usage("no key in the set can verify signatures"));
            }
            algs
        }
    };
    // --alg narrows; one that no key here could ever verify is a usage error (exit 2),
    // not a refused token: it is a mistake on the command line, whatever the token.
    let allowed = if args.alg.is_empty() {
        possible
    } else {
        let mut algs = Vec::new();
        for &a in &args.alg {
            if !possible.contains(&a) {
                return Err(Failure::usage(match &keys {
                    Keys::One(k) => refusal(k, a)
                        .unwrap_or_else(|| format!("{a} cannot be used with {}", describe(k))),
                    Keys::Set(_) => format!("--alg {a}: no key in the set can verify it"),
                }));
            }
            if !algs.contains(&a) {
                algs.push(a);
            }
        }
        algs
    };

    let limit = args.max_size.unwrap_or(DEFAULT_MAX_SIZE);
    if limit == 0 {
        return Err(Failure::usage("--max-size must be at least 1"));
    }
    let mut validation = Validation::new().algorithms(&allowed).max_size(limit);
    for i in &args.iss {
        validation = validation.issuer(i.clone());
    }
    for a in &args.aud {
        validation = validation.audience(a.clone());
    }
    if let Some(l) = args.leeway {
        validation = validation.leeway(l);
    }
    if args.no_exp {
        validation = validation.allow_missing_exp();
    }

    let token = token_arg(&args.token, limit)?;
    // The claims are printed as the token has them: numbers keep their digits.
    let result = match &keys {
        Keys::One(k) => jwt::decode::<Box<RawValue>>(&token, k, &validation),
        Keys::Set(set) => jwt::decode::<Box<RawValue>>(&token, set, &validation),
    };
    match result {
        Ok(data) => print_line(data.claims.get()),
        // The token never supplies the key: InvalidKey is about the key we were given
        // (its `use` or `key_ops` forbid verifying, a secret in a set is too short).
        Err(e) if e.kind() == ErrorKind::InvalidKey => Err(Failure::usage(format!(
            "the key is refused: {}",
            e.message()
        ))),
        Err(e) => Err(Failure::token(format!("invalid token: {}", e.message()))),
    }
}

fn decode(args: &DecodeArgs) -> Result<(), Failure> {
    let token = token_arg(&args.token, DEFAULT_MAX_SIZE)?;
    let (header, payload) = tessera_jose::dangerous::insecure_decode(&token)
        .map_err(|e| Failure::token(format!("cannot decode the token: {}", e.message())))?;
    if payload.is_none() {
        eprintln!(
            "tessera: warning: nothing was verified or decrypted: this is a JWE; its header is shown unauthenticated, and its payload is encrypted"
        );
    } else {
        eprintln!(
            "tessera: warning: nothing was verified: the signature was not checked and the claims were not validated"
        );
    }
    let out = serde_json::json!({ "header": header, "payload": payload });
    print_line(&out.to_string())
}

fn encrypt(args: &EncryptArgs) -> Result<(), Failure> {
    let keys = args.key.load()?;
    let key = match &keys {
        Keys::One(k) => k,
        Keys::Set(set) => encryption_key(set, args.kid.as_deref(), args.alg, args.enc)?,
    };
    let payload = match &args.payload {
        Some(p) if p.as_os_str() != "-" => read_file(p, MAX_PAYLOAD)?,
        _ => read_bounded(std::io::stdin().lock(), MAX_PAYLOAD, "standard input")?,
    };
    let mut opts = EncryptOptions::new(args.alg, args.enc);
    let body = match nested_jws(&payload) {
        Some(jws) => {
            opts = opts.with_cty("JWT");
            jws
        }
        None => &payload[..],
    };
    if let Some(kid) = &args.kid {
        opts = opts.with_kid(kid.clone());
    }
    let token = jwe::encrypt(body, key, &opts).map_err(|e| match e.kind() {
        ErrorKind::Crypto => Failure::token(format!("encryption failed: {}", e.message())),
        _ => Failure::usage(format!("cannot encrypt: {}", e.message())),
    })?;
    if token.len() > DEFAULT_MAX_SIZE {
        eprintln!(
            "tessera: warning: the token is {} bytes, over the {DEFAULT_MAX_SIZE} that decrypt \
             and verify accept by default: give them --max-size {}",
            token.len(),
            token.len()
        );
    }
    print_line(&token)
}

fn decrypt(args: &DecryptArgs) -> Result<(), Failure> {
    let keys = args.key.load()?;
    match &keys {
        Keys::One(k) => {
            if let Some(why) = cannot_decrypt(k) {
                return Err(Failure::usage(why));
            }
        }
        Keys::Set(set) => {
            if set.keys().iter().all(|k| cannot_decrypt(k).is_some()) {
                return Err(Failure::usage("no key in the set can decrypt"));
            }
        }
    }
    let limit = args.max_size.unwrap_or(DEFAULT_MAX_SIZE);
    if limit == 0 {
        return Err(Failure::usage("--max-size must be at least 1"));
    }
    let token = token_arg(&args.token, limit)?;
    let decrypter = Decrypter::new().max_size(limit);
    let result = match &keys {
        Keys::One(k) => jwe::decrypt(&token, k, &decrypter),
        Keys::Set(set) => jwe::decrypt(&token, set, &decrypter),
    };
    match result {
        Ok(opened) => write_stdout(opened.plaintext()),
        Err(e) if e.kind() == ErrorKind::InvalidKey => Err(Failure::usage(format!(
            "the key is refused: {}",
            e.message()
        ))),
        Err(e) => Err(Failure::token(format!(
            "cannot decrypt the token: {}",
            e.message()
        ))),
    }
}

// ----- helpers ------------------------------------------------------------------------

fn parse_alg(s: &str) -> Result<Algorithm, String> {
    s.parse().map_err(|_| {
        "not a JWS algorithm: use HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, \
         PS512, ES256, ES384, ES512 or EdDSA"
            .to_owned()
    })
}

fn parse_key_management(s: &str) -> Result<KeyManagement, String> {
    s.parse().map_err(|_| {
        "not a JWE key management algorithm: use dir, A128KW, A192KW, A256KW, RSA-OAEP, \
         RSA-OAEP-256, ECDH-ES, ECDH-ES+A128KW, ECDH-ES+A192KW or ECDH-ES+A256KW"
            .to_owned()
    })
}

fn parse_enc(s: &str) -> Result<ContentEncryption, String> {
    s.parse().map_err(|_| {
        "not a JWE content encryption: use A128GCM, A192GCM, A256GCM, A128CBC-HS256, \
         A192CBC-HS384 or A256CBC-HS512"
            .to_owned()
    })
}

/// `--claims JSON` or `--claims @FILE`: a JSON object.
fn claims_arg(text: &str) -> Result<Map<String, Value>, Failure> {
    let owned;
    let json = match text.strip_prefix('@') {
        Some(path) => {
            let bytes = read_file(path.as_ref(), MAX_CLAIMS_FILE)?;
            owned = String::from_utf8(bytes)
                .map_err(|_| Failure::usage(format!("{path} is not UTF-8 text")))?;
            owned.as_str()
        }
        None => text,
    };
    let map = match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(Failure::usage("--claims must be a JSON object")),
        Err(e) => return Err(Failure::usage(format!("--claims is not valid JSON: {e}"))),
    };
    // What verify would refuse (a member twice, nesting past 32, a registered claim
    // of the wrong type) is refused here, not minted into a token.
    jwt::check_claims(json.as_bytes(), &Validation::new())
        .map_err(|e| Failure::usage(format!("the claims are invalid: {}", e.message())))?;
    Ok(map)
}

/// With a JWK Set, the key that signs: the private one with `--kid`, or the only one.
fn signing_key<'a>(set: &'a JwkSet, kid: Option<&str>) -> Result<&'a Jwk, Failure> {
    let found: Vec<&Jwk> = set
        .keys()
        .iter()
        .filter(|k| k.is_private())
        .filter(|k| kid.is_none_or(|want| k.kid() == Some(want)))
        .collect();
    match (found.as_slice(), kid) {
        ([one], _) => Ok(one),
        ([], Some(want)) => Err(Failure::usage(format!(
            "no private key in the set has kid {:?}",
            short(want)
        ))),
        ([], None) => Err(Failure::usage("the key set holds no private key")),
        (many, Some(want)) => Err(Failure::usage(format!(
            "{} private keys in the set have kid {:?}",
            many.len(),
            short(want)
        ))),
        (many, None) => Err(Failure::usage(format!(
            "the key set holds {} private keys: choose one with --kid",
            many.len()
        ))),
    }
}

/// With a JWK Set, the key that encrypts: the one with `--kid`, or the only one that fits.
fn encryption_key<'a>(
    set: &'a JwkSet,
    kid: Option<&str>,
    alg: KeyManagement,
    enc: ContentEncryption,
) -> Result<&'a Jwk, Failure> {
    let found: Vec<&Jwk> = set
        .keys()
        .iter()
        .filter(|k| kid.is_none_or(|want| k.kid() == Some(want)))
        .filter(|k| encryption_fits(k, alg, enc))
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(Failure::usage(format!(
            "no key in the set{} fits {alg} with {enc}",
            kid.map(|k| format!(" with kid {:?}", short(k)))
                .unwrap_or_default()
        ))),
        many => Err(Failure::usage(format!(
            "{} keys in the set fit {alg} with {enc}: choose one with --kid",
            many.len()
        ))),
    }
}

/// Whether `key` can be used for `alg` with `enc` (as RFC 7518 §4 sizes them).
fn encryption_fits(key: &Jwk, alg: KeyManagement, enc: ContentEncryption) -> bool {
    match alg {
        KeyManagement::Dir => key.secret_len() == Some(enc.key_len()),
        KeyManagement::A128KW => key.secret_len() == Some(16),
        KeyManagement::A192KW => key.secret_len() == Some(24),
        KeyManagement::A256KW => key.secret_len() == Some(32),
        KeyManagement::RsaOaep | KeyManagement::RsaOaep256 => key.key_type() == KeyType::Rsa,
        _ => matches!(
            key.curve(),
            Some(Curve::P256 | Curve::P384 | Curve::P521 | Curve::X25519)
        ),
    }
}

/// Why `key` can never open a JWE; `None` if it may.
fn cannot_decrypt(key: &Jwk) -> Option<String> {
    if key.curve() == Some(Curve::Ed25519) {
        return Some("an Ed25519 key cannot decrypt (it only signs)".to_owned());
    }
    if !key.is_private() {
        return Some(format!(
            "the key is the public half of {}: decrypting needs the private key",
            describe(key)
        ));
    }
    None
}

/// The compact JWS in `payload` (trailing whitespace removed), if it is one:
/// three base64url parts whose header decodes to a JSON object with `alg`.
fn nested_jws(payload: &[u8]) -> Option<&[u8]> {
    let text = std::str::from_utf8(payload).ok()?.trim();
    let parts: Vec<&str> = text.split('.').collect();
    let b64url = |p: &str| {
        p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if parts.len() != 3
        || parts[0].is_empty()
        || parts[2].is_empty()
        || !parts.iter().all(|p| b64url(p))
    {
        return None;
    }
    let (header, _) = tessera_jose::dangerous::insecure_decode(text).ok()?;
    header.get("alg")?;
    Some(text.as_bytes())
}
