// Package jobtemplate parses and renders the text/template strings of jobs (queries and S3
// paths). Validation and the job runner share it, so a template that validates is exactly
// one that runs.
package jobtemplate

import (
	"fmt"
	"strings"
	"text/template"
	"time"
)

// Data is what a job template sees.
type Data struct {
	// ScheduledTime is the occurrence being run, in the job's time zone.
	ScheduledTime time.Time
	// RunID identifies the run; unique per attempt series.
	RunID string
	// Job is the job's name.
	Job string
}

// Sample is the data validation renders templates with: a fixed time in the job's zone
// chosen so that every date field has two digits that differ (month 01 vs day 02 ...).
func Sample(job string, loc *time.Location) Data {
	return Data{
		ScheduledTime: time.Date(2026, time.January, 2, 3, 4, 5, 0, loc),
		RunID:         "20260102T030405Z-sample",
		Job:           job,
	}
}

// Parse parses a job template. Referring to a field that does not exist fails at render
// time (missingkey=error has no effect on struct fields; text/template reports them).
func Parse(name, text string) (*template.Template, error) {
	t, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, cleanErr(err)
	}
	return t, nil
}

// Render executes t with d.
func Render(t *template.Template, d Data) (string, error) {
	var b strings.Builder
	if err := t.Execute(&b, d); err != nil {
		return "", cleanErr(err)
	}
	return b.String(), nil
}

// cleanErr drops text/template's "template: NAME:" prefix; the caller says where.
func cleanErr(err error) error {
	msg := err.Error()
	if strings.HasPrefix(msg, "template: ") {
		if i := strings.Index(msg[len("template: "):], ": "); i >= 0 {
			msg = msg[len("template: ")+i+2:]
		}
	}
	return fmt.Errorf("%s", msg)
}
