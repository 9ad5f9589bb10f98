package pgstate_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/xacctd/xacctd/pkg/pgstate"
)

// secret is a password that must never show in an error or a log line; "s3cr3t" and "Pa55"
// are checked apart as well, to catch a password shown in part.
const secret = "s3cr3t-Pa55"

func checkNoSecret(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range []string{secret, "s3cr3t", "Pa55"} {
		if strings.Contains(text, s) {
			t.Errorf("%s shows (part of) the password: %s", what, text)
			return
		}
	}
}

func TestWrongPasswordNotShown(t *testing.T) {
	t.Parallel()
	dsn := newDatabase(t)
	db := dbName(t, dsn)
	for name, dsn := range map[string]string{
		"URL":           fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", srv.SuperUser, secret, srv.Host, srv.Port, db),
		"keyword/value": fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=disable", srv.Host, srv.Port, srv.SuperUser, secret, db),
		"quoted":        fmt.Sprintf("host=%s port=%d user=%s password='%s' dbname=%s sslmode=disable", srv.Host, srv.Port, srv.SuperUser, secret, db),
	} {
		t.Run(name, func(t *testing.T) {
			opts, logs := testOptions()
			d, err := pgstate.Open(context.Background(), dsn, opts)
			if err == nil {
				_ = d.Close()
				t.Fatal("Open with a wrong password succeeded")
			}
			t.Log(err)
			// The server was reached and refused the password.
			if !strings.Contains(err.Error(), "password authentication failed") {
				t.Errorf("Open error = %v, want the server's refusal", err)
			}
			checkNoSecret(t, "Open error", err.Error())
			for _, e := range logs.All() {
				checkNoSecret(t, "log entry", e.Message+fmt.Sprint(e.ContextMap()))
			}
		})
	}
}

func TestUnparsableDSNNotShown(t *testing.T) {
	t.Parallel()
	for _, dsn := range []string{
		"postgres://u:" + secret + "@127.0.0.1:notaport/db",
		"postgres://u:" + secret + "@127.0.0.1:5432/db?sslmode=bogus",
		"postgres://u:" + secret + "@127.0.0.1:5432/db?connect_timeout=x",
		"postgres://u:s3cr3t/Pa55@127.0.0.1:5432/db",
		"postgres://u:s3cr3t:Pa55@127.0.0.1:5432/db",
		"postgres://u:" + secret + "@[::1/db",
		"postgres://u:s3cr3t%ZZPa55@127.0.0.1:5432/db",
		"postgres://u@127.0.0.1:5432/db?password=" + secret + "&sslmode=bogus",
		"postgres://u@127.0.0.1:5432/db?password=" + secret + "&port=abc",
		"postgresql://u:" + secret + "@127.0.0.1:99999/db",
		"host=127.0.0.1 password=" + secret + " port=abc",
		"host=127.0.0.1 port=abc password=" + secret,
		"host=127.0.0.1 password = " + secret + " port=abc",
		"host=127.0.0.1 password='s3cr3t Pa55' port=abc",
		`host=127.0.0.1 password='s3cr3t\'Pa55' port=abc`,
		"host=127.0.0.1 password='" + secret,
		"host=127.0.0.1 sslpassword=" + secret + " sslmode=bogus",
	} {
		_, err := pgstate.Open(context.Background(), dsn, pgstate.Options{})
		if err == nil {
			t.Errorf("Open(%q) succeeded", dsn)
			continue
		}
		checkNoSecret(t, "Open error", err.Error())
	}
}
