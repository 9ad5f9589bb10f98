// Package systemd holds only tests: they check the unit file that ships in this directory
// with systemd's own tools, so that a unit that systemd would reject, or whose hardening
// regressed, fails CI rather than a production start.
package systemd

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	unitFile     = "xacctd.service"
	sysusersFile = "xacctd.sysusers"
	installedBin = "/usr/local/bin/xacctd"
	// maxExposure is the highest overall exposure `systemd-analyze security` may report.
	maxExposure = 2.0
	// daemonGrace is the daemon's default shutdown grace; systemd must wait longer.
	daemonGrace = 60 * time.Second
)

// tool finds one of systemd's programs; the tests fail, never skip, without it.
func tool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install systemd's tools to run these tests (Debian/Ubuntu: apt-get install systemd; Fedora: dnf install systemd): %v", name, err)
	}
	return path
}

// run runs a command and returns its combined output.
func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "SYSTEMD_COLORS=0", "SYSTEMD_PAGER=cat", "LC_ALL=C.UTF-8")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func goTool(t *testing.T) string {
	t.Helper()
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); fileExists(p) {
			return p
		}
	}
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build cmd/xacctd for systemd-analyze verify: %v", err)
	}
	return p
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func readUnit(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestVerify runs `systemd-analyze verify`, which loads the unit as systemd would and checks
// that the programs it runs exist: so cmd/xacctd is built and the copy points at it. The
// commented LoadCredential= examples are verified too, uncommented, so that they stay valid.
func TestVerify(t *testing.T) {
	analyze := tool(t, "systemd-analyze")
	dir := t.TempDir()
	bin := filepath.Join(dir, "xacctd")
	if out, err := run(t, goTool(t), "build", "-o", bin, "github.com/xacctd/xacctd/cmd/xacctd"); err != nil {
		t.Fatalf("go build ./cmd/xacctd: %v\n%s", err, out)
	}
	unit := readUnit(t)
	if !strings.Contains(unit, installedBin+" ") {
		t.Fatalf("%s does not run %s", unitFile, installedBin)
	}
	unit = strings.ReplaceAll(unit, installedBin, bin)

	tests := []struct {
		name string
		give string
	}{
		{"as shipped", unit},
		{"with the credential examples", regexp.MustCompile(`(?m)^#(LoadCredential(Encrypted)?=)`).ReplaceAllString(unit, "$1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			if err := os.Mkdir(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			copyPath := filepath.Join(sub, unitFile)
			if err := os.WriteFile(copyPath, []byte(tt.give), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := run(t, analyze, "verify", "--man=no", copyPath)
			// verify exits 0 on unknown keys and unparsable values, printing a warning: any
			// line about our unit is a failure. Lines about other units on this host are not.
			var ours, others []string
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				switch {
				case line == "":
				case strings.Contains(line, copyPath) || strings.Contains(line, unitFile):
					ours = append(ours, line)
				default:
					others = append(others, line)
				}
			}
			if len(others) > 0 {
				t.Logf("systemd-analyze verify said about other units:\n%s", strings.Join(others, "\n"))
			}
			if err != nil {
				t.Fatalf("systemd-analyze verify %s: %v\n%s", unitFile, err, out)
			}
			if len(ours) > 0 {
				t.Fatalf("systemd-analyze verify %s warned about the unit (it exits 0, systemd would ignore these lines):\n%s", unitFile, strings.Join(ours, "\n"))
			}
		})
	}
}

var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: ([0-9]+(?:\.[0-9]+)?)`)

// TestSecurityExposure keeps the hardening from regressing: the shipped file is scored
// offline (the score does not depend on the binary being there).
func TestSecurityExposure(t *testing.T) {
	analyze := tool(t, "systemd-analyze")
	out, err := run(t, analyze, "security", "--offline=yes", "--no-pager", "./"+unitFile)
	m := exposureRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security --offline=yes printed no overall exposure (%v):\n%s", err, out)
	}
	got, perr := strconv.ParseFloat(m[1], 64)
	if perr != nil {
		t.Fatal(perr)
	}
	t.Logf("overall exposure %.1f", got)
	if got > maxExposure {
		t.Errorf("overall exposure %.1f, want %.1f or lower; what is exposed:\n%s", got, maxExposure, exposed(out))
	}
}

// exposed keeps the lines of a security report that add to the exposure.
func exposed(report string) string {
	var b strings.Builder
	for _, line := range strings.Split(report, "\n") {
		if strings.HasPrefix(line, "✗") || strings.Contains(line, "Overall") {
			b.WriteString(strings.TrimRight(line, " ") + "\n")
		}
	}
	return b.String()
}

// TestSettings checks the settings the daemon relies on, which verify cannot know about.
func TestSettings(t *testing.T) {
	svc := parseSection(t, readUnit(t), "Service")
	want := map[string]string{
		"Type":                   "notify",
		"ExecReload":             "/bin/kill -HUP $MAINPID",
		"Restart":                "on-failure",
		"StateDirectory":         "xacctd",
		"StateDirectoryMode":     "0700",
		"ConfigurationDirectory": "xacctd",
		"EnvironmentFile":        "-/etc/xacctd/xacctd.env",
		"NoNewPrivileges":        "yes",
		"ProtectSystem":          "strict",
	}
	for key, w := range want {
		if got := last(svc[key]); got != w {
			t.Errorf("%s=%q, want %q", key, got, w)
		}
	}
	if got := last(svc["ExecStart"]); !strings.HasPrefix(got, installedBin+" run ") {
		t.Errorf("ExecStart=%q, want %s run ...", got, installedBin)
	}
	stop, err := parseTimespan(last(svc["TimeoutStopSec"]))
	if err != nil {
		t.Errorf("TimeoutStopSec: %v", err)
	} else if stop < daemonGrace+30*time.Second {
		t.Errorf("TimeoutStopSec=%v, want at least %v: the daemon's shutdown grace is %v and systemd must not SIGKILL it before the grace ends",
			stop, daemonGrace+30*time.Second, daemonGrace)
	}
	watchdog, err := parseTimespan(last(svc["WatchdogSec"]))
	if err != nil || watchdog < 10*time.Second {
		t.Errorf("WatchdogSec=%q (%v), want a period of at least 10s (the daemon pings at half of it)", last(svc["WatchdogSec"]), err)
	}
	if user := last(svc["User"]); user == "" || user == "root" {
		if last(svc["DynamicUser"]) != "yes" {
			t.Errorf("User=%q, want a dedicated non-root user or DynamicUser=yes", user)
		}
	}
	if _, ok := svc["PrivateNetwork"]; ok {
		t.Error("PrivateNetwork= is set: the daemon must reach AWS, Redshift and PostgreSQL")
	}
}

// TestSysusers checks that systemd-sysusers accepts the user definition the unit's User=
// relies on, in a scratch root (nothing is written).
func TestSysusers(t *testing.T) {
	sysusers := tool(t, "systemd-sysusers")
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf, err := filepath.Abs(sysusersFile)
	if err != nil {
		t.Fatal(err)
	}
	out, err := run(t, sysusers, "--dry-run", "--root="+root, conf)
	if err != nil || !strings.Contains(out, "Creating user 'xacctd'") {
		t.Fatalf("systemd-sysusers --dry-run %s: %v\n%s", sysusersFile, err, out)
	}
	if user := last(parseSection(t, readUnit(t), "Service")["User"]); user != "xacctd" {
		t.Errorf("the unit runs as User=%q, but %s creates xacctd", user, sysusersFile)
	}
}

// parseSection returns the values of each key in one [section] of a unit file, in order.
// Enough of systemd.syntax(7) for this file: comments, sections, key=value, and lines
// continued with a trailing backslash.
func parseSection(t *testing.T, unit, section string) map[string][]string {
	t.Helper()
	values := map[string][]string{}
	var current, pending string
	sc := bufio.NewScanner(strings.NewReader(unit))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if pending != "" {
			line, pending = pending+" "+line, ""
		}
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			pending = strings.TrimSuffix(line, `\`)
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			current = line[1 : len(line)-1]
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not key=value: %q", unitFile, line)
		}
		if current == section {
			key = strings.TrimSpace(key)
			values[key] = append(values[key], strings.TrimSpace(value))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return values
}

// last is the value in force: for single-valued settings the last assignment wins.
func last(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// parseTimespan parses systemd's time spans (systemd.time(7)): "90s", "1min 30s", "1.5min",
// a bare number of seconds.
func parseTimespan(s string) (time.Duration, error) {
	units := map[string]time.Duration{
		"us": time.Microsecond, "usec": time.Microsecond, "µs": time.Microsecond,
		"ms": time.Millisecond, "msec": time.Millisecond,
		"": time.Second, "s": time.Second, "sec": time.Second, "second": time.Second, "seconds": time.Second,
		"m": time.Minute, "min": time.Minute, "minute": time.Minute, "minutes": time.Minute,
		"h": time.Hour, "hr": time.Hour, "hour": time.Hour, "hours": time.Hour,
	}
	re := regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([a-zµ]*)`)
	rest := strings.TrimSpace(s)
	if rest == "" {
		return 0, fmt.Errorf("empty time span")
	}
	var total time.Duration
	for rest != "" {
		m := re.FindStringSubmatch(rest)
		if m == nil {
			return 0, fmt.Errorf("time span %q: cannot parse %q", s, rest)
		}
		unit, ok := units[m[2]]
		if !ok {
			return 0, fmt.Errorf("time span %q: unknown unit %q", s, m[2])
		}
		n, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return 0, fmt.Errorf("time span %q: %w", s, err)
		}
		total += time.Duration(n * float64(unit))
		rest = strings.TrimSpace(rest[len(m[0]):])
	}
	return total, nil
}

func TestParseTimespan(t *testing.T) {
	tests := []struct {
		give    string
		want    time.Duration
		wantErr bool
	}{
		{give: "90s", want: 90 * time.Second},
		{give: "90", want: 90 * time.Second},
		{give: "1min 30s", want: 90 * time.Second},
		{give: "1.5min", want: 90 * time.Second},
		{give: "2h", want: 2 * time.Hour},
		{give: "500ms", want: 500 * time.Millisecond},
		{give: "", wantErr: true},
		{give: "ninety", wantErr: true},
		{give: "5 fortnights", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseTimespan(tt.give)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseTimespan(%q) = %v, %v; want %v, error %v", tt.give, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseSection(t *testing.T) {
	unit := "[Unit]\nDescription=x\n# Type=simple\n[Service]\nType=notify\nExecStart=/bin/a \\\n  --b\nEnvironment=A=1\nEnvironment=B=2\n"
	got := parseSection(t, unit, "Service")
	want := map[string][]string{
		"Type":        {"notify"},
		"ExecStart":   {"/bin/a  --b"},
		"Environment": {"A=1", "B=2"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseSection (-want +got):\n%s", diff)
	}
}
