// Package redshiftsim is the sandbox's Redshift stand-in: a PostgreSQL
// wire-protocol server that relays ordinary SQL to a PostgreSQL database and
// executes UNLOAD and COPY FROM S3 itself against moto, checking role
// association, trust and bucket access the way Redshift does and answering
// with Redshift's error texts. README.md lists what is supported and how it
// deviates from Redshift.
package redshiftsim
