// Package config loads, defaults and validates xacctd's configuration file.
//
// Load is the only way in: it decodes strictly (unknown keys are errors), applies defaults,
// validates everything that can be checked without AWS, and reports every problem at once
// with its position. A Config returned without error is complete: every reference resolves
// and every default is filled in.
package config

import (
	"fmt"
	"os"
	"reflect"
	"strings"
)

// DefaultPath is used when neither --config nor $XACCTD_CONFIG is given.
const DefaultPath = "/etc/xacctd/config.yaml"

// PathFromEnv returns the config path to use: flag, else $XACCTD_CONFIG, else DefaultPath.
func PathFromEnv(flag string) string {
	if flag != "" {
		return flag
	}
	if p := os.Getenv("XACCTD_CONFIG"); p != "" {
		return p
	}
	return DefaultPath
}

// Load reads, decodes, defaults and validates the configuration at path. When the file is
// not valid, the error is an *Error listing every problem.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse is Load for data already read; file names the source in problems.
func Parse(file string, data []byte) (*Config, error) {
	cfg := &Config{File: file, pos: positions{}}
	ps := &problems{file: file, pos: cfg.pos}
	applyDefaults(reflect.ValueOf(cfg).Elem())

	root := parseYAML(file, data, ps)
	if root == nil {
		return nil, ps.err()
	}
	d := &decoder{ps: ps}
	d.decode(root, reflect.ValueOf(cfg).Elem(), "")
	if d.tooBig {
		return nil, ps.err()
	}
	cfg.resolve()
	validate(cfg, ps)
	if err := ps.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// resolve fills in what derives from other parts of the file: names of map entries and
// regions inherited from defaults.
func (c *Config) resolve() {
	for name, a := range c.Accounts {
		if a != nil {
			a.Name = name
		}
	}
	for name, cl := range c.Clusters {
		if cl == nil {
			continue
		}
		cl.Name = name
		if cl.Region == "" {
			cl.Region = c.Defaults.Region
		}
	}
	for name, b := range c.Buckets {
		if b == nil {
			continue
		}
		b.Key = name
		if b.Region == "" {
			b.Region = c.Defaults.Region
		}
	}
	if c.State.Backend == "file" && c.State.Dir == "" {
		c.State.Dir = defaultStateDir()
	}
}

// defaultStateDir is systemd's StateDirectory= when set (the first of a colon-separated
// list), else /var/lib/xacctd.
func defaultStateDir() string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		return strings.Split(d, ":")[0]
	}
	return "/var/lib/xacctd"
}

// Pair returns the pair with the given name, or nil.
func (c *Config) Pair(name string) *Pair {
	for _, p := range c.Pairs {
		if p != nil && p.Name == name {
			return p
		}
	}
	return nil
}

// Job returns the job with the given name, or nil.
func (c *Config) Job(name string) *Job {
	for _, j := range c.Jobs {
		if j != nil && j.Name == name {
			return j
		}
	}
	return nil
}

// Has reports whether the pair grants the access ("unload" or "copy").
func (p *Pair) Has(access string) bool {
	for _, a := range p.Access {
		if a == access {
			return true
		}
	}
	return false
}

// IsEnabled reports whether the job is scheduled.
func (j *Job) IsEnabled() bool { return j.Enabled == nil || *j.Enabled }

// Kind is "unload" or "copy".
func (j *Job) Kind() string {
	if j.Unload != nil {
		return "unload"
	}
	return "copy"
}
