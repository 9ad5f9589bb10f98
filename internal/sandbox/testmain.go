package sandbox

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// RunTests is a TestMain for packages that test xacctd against the sandbox: it starts one
// world, exports its environment (so xacctd's own AWS configuration reaches moto, exactly as
// with the xacctd-sandbox env file), runs the tests and closes the world. A world that
// cannot start fails the run with what to install: tests never skip for a missing sandbox.
//
//	func TestMain(m *testing.M) { os.Exit(sandbox.RunTests(m, sandbox.Options{}, &world)) }
func RunTests(m *testing.M, opts Options, world **World) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	w, err := Start(ctx, opts)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandbox unavailable (run scripts/sandbox-deps.sh):", err)
		return 1
	}
	for k, v := range w.Env() {
		os.Setenv(k, v)
	}
	*world = w
	code := m.Run()
	if err := w.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close sandbox:", err)
	}
	return code
}
