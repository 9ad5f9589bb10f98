package sandbox

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestWriteFileAtomicModeIgnoresUmask: the env file holds the world's secrets (the database
// password, the base credentials). It is 0600 under any umask, also when it replaces a file
// that was readable by everyone.
func TestWriteFileAtomicModeIgnoresUmask(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := t.TempDir()
	fresh := filepath.Join(dir, "fresh.env")
	replaced := filepath.Join(dir, "replaced.env")
	if err := os.WriteFile(replaced, []byte("OLD=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{fresh, replaced} {
		if err := WriteFileAtomic(path, []byte(FormatEnv(map[string]string{"XACCTD_SANDBOX_DB_PASSWORD": "x"})), 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %04o under umask 0, want 0600", filepath.Base(path), st.Mode().Perm())
		}
	}
}
