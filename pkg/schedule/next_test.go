package schedule

import (
	"testing"
	"time"

	"github.com/xacctd/xacctd/pkg/config"
)

func TestNextDST(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	lh, err := time.LoadLocation("Australia/Lord_Howe") // 30-minute DST shift
	if err != nil {
		t.Fatal(err)
	}
	at := func(loc *time.Location, s string) time.Time {
		t.Helper()
		for _, layout := range []string{"2006-01-02 15:04 MST", "2006-01-02 15:04 -0700"} {
			if v, err := time.ParseInLocation(layout, s, loc); err == nil {
				return v
			}
		}
		t.Fatalf("bad time %q", s)
		return time.Time{}
	}
	tests := []struct {
		name string
		spec string
		loc  *time.Location
		from string
		want []string // successive occurrences, as instants in UTC
	}{
		{"spring-forward gap runs once right after the jump", "30 2 * * *", ny, "2026-03-07 12:00 EST",
			[]string{"2026-03-08T07:00:00Z" /* 03:00 EDT */, "2026-03-09T06:30:00Z" /* 02:30 EDT */}},
		{"several times in one gap collapse into one run", "*/15 2 * * *", ny, "2026-03-08 01:50 EST",
			[]string{"2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z", "2026-03-09T06:15:00Z"}},
		{"repeated hour runs once", "30 1 * * *", ny, "2026-10-31 12:00 EDT",
			[]string{"2026-11-01T05:30:00Z" /* 01:30 EDT */, "2026-11-02T06:30:00Z" /* 01:30 EST, next day */}},
		{"started during the second pass of the repeated hour: no second run", "30 1 * * *", ny, "2026-11-01 01:10 EST",
			[]string{"2026-11-02T06:30:00Z"}},
		{"wildcard hour follows real time through fall-back", "30 * * * *", ny, "2026-11-01 00:10 EDT",
			[]string{"2026-11-01T04:30:00Z", "2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z", "2026-11-01T07:30:00Z"}},
		{"wildcard hour skips the missing hour in spring", "30 * * * *", ny, "2026-03-08 01:10 EST",
			[]string{"2026-03-08T06:30:00Z" /* 01:30 EST */, "2026-03-08T07:30:00Z" /* 03:30 EDT */}},
		{"Berlin: spring-forward gap (02:00 CET -> 03:00 CEST) runs once at the jump", "30 2 * * *", berlin, "2026-03-28 12:00 +0100",
			[]string{"2026-03-29T01:00:00Z" /* 03:00 CEST */, "2026-03-30T00:30:00Z" /* 02:30 CEST */}},
		{"Berlin: repeated hour (03:00 CEST -> 02:00 CET) runs once", "30 2 * * *", berlin, "2026-10-24 12:00 +0200",
			[]string{"2026-10-25T00:30:00Z" /* 02:30 CEST */, "2026-10-26T01:30:00Z" /* 02:30 CET */}},
		{"Berlin: wildcard hour runs in both passes of the repeated hour", "0 * * * *", berlin, "2026-10-25 01:30 +0200",
			[]string{"2026-10-25T00:00:00Z" /* 02:00 CEST */, "2026-10-25T01:00:00Z" /* 02:00 CET */, "2026-10-25T02:00:00Z"}},
		{"Berlin: Sunday 02:15 weekly job on the jump day", "15 2 * * 0", berlin, "2026-03-28 12:00 +0100",
			[]string{"2026-03-29T01:00:00Z", "2026-04-05T00:15:00Z"}},
		{"no transition: plain daily", "0 2 * * *", ny, "2026-06-01 12:00 EDT",
			[]string{"2026-06-02T06:00:00Z", "2026-06-03T06:00:00Z"}},
		{"30-minute spring-forward gap", "15 2 * * *", lh, "2026-10-03 12:00 +1030",
			[]string{"2026-10-03T15:30:00Z" /* 02:30 +11, right after the jump */, "2026-10-04T15:15:00Z"}},
		{"per-minute job restarted in the second pass of a repeated hour", "*/5 1 * * *", ny, "2026-11-01 01:00 EST",
			[]string{"2026-11-02T06:00:00Z" /* 01:00 EST the next day */}},
		{"@every is a fixed interval", "@every 90m", ny, "2026-03-08 01:00 EST",
			[]string{"2026-03-08T07:30:00Z", "2026-03-08T09:00:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sched, err := config.CronParser.Parse(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			cur := at(tt.loc, tt.from)
			for i, w := range tt.want {
				got := Next(sched, tt.loc, cur)
				if g := got.UTC().Format(time.RFC3339); g != w {
					t.Fatalf("occurrence %d after %s: got %s (%s), want %s", i+1, cur.In(tt.loc), g, got.In(tt.loc), w)
				}
				cur = got
			}
		})
	}
}
