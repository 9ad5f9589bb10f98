package config

import (
	"fmt"
	"os"
	"strings"
)

// Secret is a value read from a *_env or *_file reference: a password, an external id, a
// DSN. Every way of printing it prints [redacted]; Reveal is the only way to the value, and
// is called only where the value is sent (a connection, an STS call).
type Secret struct {
	value string
}

const redacted = "[redacted]"

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return s.value }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.value == "" }

func (Secret) String() string               { return redacted }
func (Secret) GoString() string             { return redacted }
func (Secret) Format(f fmt.State, _ rune)   { _, _ = f.Write([]byte(redacted)) }
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
func (Secret) MarshalYAML() (any, error)    { return redacted, nil }

// ReadSecret resolves a secret reference: the environment variable env, or the file file
// ($CREDENTIALS_DIRECTORY expanded). Errors name the reference, never the value.
func ReadSecret(env, file string) (Secret, error) {
	switch {
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok || v == "" {
			return Secret{}, fmt.Errorf("environment variable %s is not set or empty", env)
		}
		return Secret{value: v}, nil
	case file != "":
		path, err := ExpandCredentialsPath(file)
		if err != nil {
			return Secret{}, err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return Secret{}, fmt.Errorf("read secret file: %w", err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return Secret{}, fmt.Errorf("secret file %s is empty", path)
		}
		return Secret{value: v}, nil
	}
	return Secret{}, fmt.Errorf("no secret reference configured")
}

// ExpandCredentialsPath expands $CREDENTIALS_DIRECTORY (systemd LoadCredential=) at the
// start of a *_file path. It is an error when the path uses it and it is not set: reading
// from / instead would find the wrong file or none.
func ExpandCredentialsPath(p string) (string, error) {
	for _, v := range []string{"${CREDENTIALS_DIRECTORY}", "$CREDENTIALS_DIRECTORY"} {
		if strings.HasPrefix(p, v+"/") {
			dir := os.Getenv("CREDENTIALS_DIRECTORY")
			if dir == "" {
				return "", fmt.Errorf("%s uses $CREDENTIALS_DIRECTORY, which is not set: run under systemd with LoadCredential=, or set it", p)
			}
			return dir + p[len(v):], nil
		}
	}
	return p, nil
}

// PasswordSecret returns the cluster's password (auth: password).
func (cl *Cluster) PasswordSecret() (Secret, error) {
	s, err := ReadSecret(cl.PasswordEnv, cl.PasswordFile)
	if err != nil {
		return Secret{}, fmt.Errorf("password of cluster %s: %w", cl.Name, err)
	}
	return s, nil
}

// ExternalIDSecret returns the sts:ExternalId for assuming the account's role_arn, or a zero
// Secret when none is configured.
func (a *Account) ExternalIDSecret() (Secret, error) {
	if a.ExternalIDEnv == "" && a.ExternalIDFile == "" {
		return Secret{}, nil
	}
	s, err := ReadSecret(a.ExternalIDEnv, a.ExternalIDFile)
	if err != nil {
		return Secret{}, fmt.Errorf("external id of account %s: %w", a.Name, err)
	}
	return s, nil
}

// DSNSecret returns the state database DSN (backend: postgres).
func (s State) DSNSecret() (Secret, error) {
	v, err := ReadSecret(s.DSNEnv, s.DSNFile)
	if err != nil {
		return Secret{}, fmt.Errorf("state dsn: %w", err)
	}
	return v, nil
}
