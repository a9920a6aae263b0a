-- OpenID Connect: ID tokens get signing keys of their own (RS256 by default, while
-- access tokens keep signing_alg); every existing key signs access tokens.
ALTER TABLE signing_keys ADD COLUMN purpose TEXT NOT NULL DEFAULT 'access';
