package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// TestBinary builds the command, runs it like a user would, and checks the
// contract: env file with every key, config fragment, clean exit on SIGTERM
// with nothing left behind.
func TestBinary(t *testing.T) {
	work := t.TempDir()
	bin := filepath.Join(work, "xacctd-sandbox")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	// Private TMPDIR: afterwards it must be empty. As root the server runs
	// as the postgres user, which must be able to reach it.
	tmp, err := os.MkdirTemp("", "xacctd-sandbox-cmd-test-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}

	envFile := filepath.Join(work, "sandbox.env")
	configOut := filepath.Join(work, "sandbox.yml")
	cmd := exec.Command(bin, "--env-file", envFile, "--config-out", configOut)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
	})

	start := time.Now()
	env := waitForEnvFile(t, envFile, done, &stderr)
	t.Logf("env file appeared after %v", time.Since(start).Round(time.Millisecond))

	for _, k := range []string{
		"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
		"XACCTD_SANDBOX_WAREHOUSE_ACCOUNT", "XACCTD_SANDBOX_WAREHOUSE_ROLE_ARN",
		"XACCTD_SANDBOX_LAKE_ACCOUNT", "XACCTD_SANDBOX_LAKE_ROLE_ARN",
		"XACCTD_SANDBOX_CLUSTER", "XACCTD_SANDBOX_DB_USER", "XACCTD_SANDBOX_DB_PASSWORD",
		"XACCTD_SANDBOX_DATABASE", "XACCTD_SANDBOX_REDSHIFT_ENDPOINT",
		"XACCTD_SANDBOX_POSTGRES_DSN", "XACCTD_SANDBOX_SAMPLE_TABLE",
	} {
		if env[k] == "" {
			t.Errorf("env file lacks %s", k)
		}
	}
	if fi, err := os.Stat(envFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("env file mode: %v %v, want 0600", fi.Mode(), err)
	}
	frag, err := os.ReadFile(configOut)
	if err != nil {
		t.Fatalf("config fragment: %v", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(frag, &doc); err != nil || doc["accounts"] == nil || doc["clusters"] == nil {
		t.Errorf("config fragment is not accounts+clusters YAML (%v):\n%s", err, frag)
	}

	// Everything answers.
	resp, err := http.Get(env["AWS_ENDPOINT_URL"] + "/moto-api/data.json")
	if err != nil {
		t.Fatalf("moto: %v", err)
	}
	resp.Body.Close()
	for _, addr := range []string{env["XACCTD_SANDBOX_REDSHIFT_ENDPOINT"], hostPort(t, env["XACCTD_SANDBOX_POSTGRES_DSN"])} {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Errorf("dial %s: %v", addr, err)
			continue
		}
		c.Close()
	}
	children := childrenOf(cmd.Process.Pid)
	if len(children) < 2 {
		t.Errorf("expected moto and postgres as children, found pids %v", children)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30s after SIGTERM\nstdout:\n%s", stdout.String())
	}

	for _, pid := range children {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("child %d still exists", pid)
		}
	}
	left, _ := os.ReadDir(tmp)
	for _, e := range left {
		t.Errorf("left behind in TMPDIR: %s", e.Name())
	}
	if _, err := os.Stat(envFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("env file still present after stop (%v)", err)
	}
	if c, err := net.DialTimeout("tcp", env["XACCTD_SANDBOX_REDSHIFT_ENDPOINT"], time.Second); err == nil {
		c.Close()
		t.Error("stand-in still listening after stop")
	}
	if !strings.Contains(stdout.String(), "set -a; . "+envFile) {
		t.Errorf("usage hint missing from output:\n%s", stdout.String())
	}
}

func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--env-file") {
		t.Errorf("run without flags: code %d, stderr %q", code, errb.String())
	}
}

func waitForEnvFile(t *testing.T, path string, done <-chan error, stderr *bytes.Buffer) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		if data, err := os.ReadFile(path); err == nil {
			return parseEnv(t, data)
		}
		select {
		case err := <-done:
			t.Fatalf("exited before writing the env file: %v\nstderr:\n%s", err, stderr.String())
		case <-ctx.Done():
			t.Fatalf("no env file after a minute\nstderr:\n%s", stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func parseEnv(t *testing.T, data []byte) map[string]string {
	t.Helper()
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			t.Errorf("env file line without '=': %q", sc.Text())
			continue
		}
		env[k] = strings.Trim(v, "'")
	}
	return env
}

func hostPort(t *testing.T, dsn string) string {
	t.Helper()
	// postgres://user:pw@host:port/db?...
	_, rest, _ := strings.Cut(dsn, "@")
	hp, _, _ := strings.Cut(rest, "/")
	return hp
}

// childrenOf lists the direct children of pid from /proc.
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may contain spaces.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			kids = append(kids, n)
		}
	}
	return kids
}
