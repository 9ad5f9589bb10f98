// Command xacctd manages cross-account Redshift <-> S3 access and runs UNLOAD/COPY jobs.
// See README.md and docs/.
package main

import (
	"os"
	_ "time/tzdata" // job time zones must resolve on hosts without a zoneinfo database

	"github.com/xacctd/xacctd/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
