package config

import (
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
)

// PermissionWarning is a file xacctd reads whose mode lets every user of the host at it: the
// configuration file, or a secret file it names. It carries paths, modes and key names only,
// never a secret.
type PermissionWarning struct {
	File   string      // the path checked ($CREDENTIALS_DIRECTORY expanded)
	Kind   string      // "config" or "secret"
	Mode   fs.FileMode // the file's permission bits
	Keys   []string    // config: the *_file keys it sets; secret: the keys naming this file
	Fix    string      // the command that fixes it
	Reason string      // what is wrong, for the log line
}

// ModeString is Mode as chmod writes it: 0644.
func (w PermissionWarning) ModeString() string { return fmt.Sprintf("%04o", uint32(w.Mode.Perm())) }

// SecretFileKeys returns the *_file keys the configuration sets, by key path
// (clusters.reporting.password_file), with their paths as written.
func (c *Config) SecretFileKeys() map[string]string {
	keys := map[string]string{}
	for name, a := range c.Accounts {
		if a != nil && a.ExternalIDFile != "" {
			keys["accounts."+name+".external_id_file"] = a.ExternalIDFile
		}
	}
	for name, cl := range c.Clusters {
		if cl != nil && cl.PasswordFile != "" {
			keys["clusters."+name+".password_file"] = cl.PasswordFile
		}
	}
	if c.State.DSNFile != "" {
		keys["state.dsn_file"] = c.State.DSNFile
	}
	return keys
}

// PermissionWarnings checks the modes of the configuration file (c.File) and of every secret
// file it names, with stat only: no secret is read. Only the bits for every other user count:
//
//   - the configuration file writable by others: anyone on the host could change what xacctd
//     grants in AWS;
//   - the configuration file readable by others while it names secret files: it is a map to
//     the secrets, and a sign the install is looser than documented;
//   - a secret file readable or writable by others.
//
// Group bits are left alone: the documented install is config 0640 root:xacctd, where the
// group is xacctd's own. Files that cannot be stat'ed (missing, $CREDENTIALS_DIRECTORY not
// set) and files that are not regular files are skipped: they are reported when the value is
// needed.
func (c *Config) PermissionWarnings() []PermissionWarning {
	var out []PermissionWarning
	secrets := c.SecretFileKeys()
	keys := make([]string, 0, len(secrets))
	for k := range secrets {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	if mode, ok := regularMode(c.File); ok {
		var why []string
		var bad fs.FileMode
		if mode&0o002 != 0 {
			bad |= 0o002
			why = append(why, "writable by every user of the host: anyone could change what xacctd grants in AWS")
		}
		if mode&0o004 != 0 && len(keys) > 0 {
			bad |= 0o004
			why = append(why, "readable by every user of the host while it names secret files ("+strings.Join(keys, ", ")+")")
		}
		if len(why) > 0 {
			out = append(out, PermissionWarning{
				File: c.File, Kind: "config", Mode: mode, Keys: keys, Fix: fixCommand(bad, c.File),
				Reason: fmt.Sprintf("configuration file %s is %s; the documented mode is 0640 root:xacctd", c.File, strings.Join(why, ", and ")),
			})
		}
	}

	// A secret file named by several keys is one warning.
	byPath := map[string][]string{}
	for _, k := range keys {
		p, err := ExpandCredentialsPath(secrets[k])
		if err != nil {
			continue
		}
		byPath[p] = append(byPath[p], k)
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		mode, ok := regularMode(p)
		if !ok || mode&0o006 == 0 {
			continue
		}
		what := "readable"
		switch {
		case mode&0o006 == 0o006:
			what = "readable and writable"
		case mode&0o002 != 0:
			what = "writable"
		}
		out = append(out, PermissionWarning{
			File: p, Kind: "secret", Mode: mode, Keys: byPath[p], Fix: fixCommand(mode&0o006, p),
			Reason: fmt.Sprintf("secret file %s (%s) is %s by every user of the host; keep it readable only by xacctd, or root-only and passed with systemd's LoadCredential=",
				p, strings.Join(byPath[p], ", "), what),
		})
	}
	return out
}

// regularMode returns the permission bits of the regular file at path (symbolic links
// followed).
func regularMode(path string) (fs.FileMode, bool) {
	if path == "" {
		return 0, false
	}
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() {
		return 0, false
	}
	return st.Mode().Perm(), true
}

// fixCommand is the chmod that removes the bits for other users in bad (0o004, 0o002).
func fixCommand(bad fs.FileMode, path string) string {
	bits := ""
	if bad&0o004 != 0 {
		bits += "r"
	}
	if bad&0o002 != 0 {
		bits += "w"
	}
	if strings.Trim(path, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+=@%:,") != "" {
		path = "'" + strings.ReplaceAll(path, "'", `'\''`) + "'"
	}
	return "chmod o-" + bits + " " + path
}
