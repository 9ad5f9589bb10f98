package redshiftsim

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestEvaluateTrust(t *testing.T) {
	const (
		user    = "arn:aws:redshift:us-east-1:111111111111:dbuser:c/etl"
		prevARN = "arn:aws:iam::111111111111:role/a"
	)
	redshift := principal{service: "redshift.amazonaws.com"}
	role := principal{roleARN: prevARN}
	ctx := map[string]string{"sts:externalid": user, "aws:sourceaccount": "111111111111"}
	tests := []struct {
		name string
		doc  string
		who  principal
		want trustResult
	}{
		{
			name: "redshift service",
			doc:  `{"Statement":[{"Effect":"Allow","Principal":{"Service":"redshift.amazonaws.com"},"Action":"sts:AssumeRole"}]}`,
			who:  redshift, want: trustAllowed,
		},
		{
			name: "single statement object, service list, wildcard action",
			doc:  `{"Statement":{"Effect":"Allow","Principal":{"Service":["ec2.amazonaws.com","redshift.amazonaws.com"]},"Action":["sts:*"]}}`,
			who:  redshift, want: trustAllowed,
		},
		{
			name: "other service only",
			doc:  `{"Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`,
			who:  redshift, want: trustNoPrincipal,
		},
		{
			name: "other action only",
			doc:  `{"Statement":[{"Effect":"Allow","Principal":{"Service":"redshift.amazonaws.com"},"Action":"sts:TagSession"}]}`,
			who:  redshift, want: trustNoPrincipal,
		},
		{
			name: "external id list with the user",
			doc: `{"Statement":[{"Effect":"Allow","Principal":{"Service":"redshift.amazonaws.com"},"Action":"sts:AssumeRole",
				"Condition":{"StringEquals":{"sts:ExternalId":["arn:x","` + user + `"]}}}]}`,
			who: redshift, want: trustAllowed,
		},
		{
			name: "external id list without the user",
			doc: `{"Statement":[{"Effect":"Allow","Principal":{"Service":"redshift.amazonaws.com"},"Action":"sts:AssumeRole",
				"Condition":{"StringEquals":{"sts:ExternalId":"arn:x"}}}]}`,
			who: redshift, want: trustConditionFailed,
		},
		{
			name: "external id pattern",
			doc: `{"Statement":[{"Effect":"Allow","Principal":{"Service":"redshift.amazonaws.com"},"Action":"sts:AssumeRole",
				"Condition":{"StringLike":{"sts:ExternalId":"arn:aws:redshift:*:dbuser:c/*"}}}]}`,
			who: redshift, want: trustAllowed,
		},
		{
			name: "unknown condition key",
			doc: `{"Statement":[{"Effect":"Allow","Principal":{"Service":"redshift.amazonaws.com"},"Action":"sts:AssumeRole",
				"Condition":{"StringEquals":{"aws:PrincipalTag/team":"x"}}}]}`,
			who: redshift, want: trustConditionFailed,
		},
		{
			name: "deny wins",
			doc: `{"Statement":[{"Effect":"Allow","Principal":{"Service":"redshift.amazonaws.com"},"Action":"sts:AssumeRole"},
				{"Effect":"Deny","Principal":"*","Action":"sts:AssumeRole"}]}`,
			who: redshift, want: trustConditionFailed,
		},
		{
			name: "chained role by ARN",
			doc:  `{"Statement":[{"Effect":"Allow","Principal":{"AWS":"` + prevARN + `"},"Action":"sts:AssumeRole"}]}`,
			who:  role, want: trustAllowed,
		},
		{
			name: "chained role by account root",
			doc:  `{"Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111111111111:root"]},"Action":"sts:AssumeRole"}]}`,
			who:  role, want: trustAllowed,
		},
		{
			name: "chained role by account id",
			doc:  `{"Statement":[{"Effect":"Allow","Principal":{"AWS":"111111111111"},"Action":"sts:AssumeRole"}]}`,
			who:  role, want: trustAllowed,
		},
		{
			name: "chained role not named",
			doc:  `{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::333333333333:root"},"Action":"sts:AssumeRole"}]}`,
			who:  role, want: trustNoPrincipal,
		},
		{
			name: "service trust does not admit a role",
			doc:  `{"Statement":[{"Effect":"Allow","Principal":{"Service":"redshift.amazonaws.com"},"Action":"sts:AssumeRole"}]}`,
			who:  role, want: trustNoPrincipal,
		},
		{
			name: "not json",
			doc:  `%7B`,
			who:  redshift, want: trustNoPrincipal,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := evaluateTrust(tt.doc, tt.who, ctx); got != tt.want {
				t.Errorf("evaluateTrust = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestReadCSV(t *testing.T) {
	s := func(v string) *string { return &v }
	tests := []struct {
		give string
		want [][]field
	}{
		{give: "a,b\n", want: [][]field{{{value: s("a")}, {value: s("b")}}}},
		{give: "\"x,\"\"y\"\"\",,\"\"\r\nz", want: [][]field{
			{{value: s(`x,"y"`), quoted: true}, {value: s("")}, {value: s(""), quoted: true}},
			{{value: s("z")}},
		}},
		{give: "\"multi\nline\",1\n", want: [][]field{{{value: s("multi\nline"), quoted: true}, {value: s("1")}}}},
		{give: "", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			got := readCSV([]byte(tt.give), ',', '"')
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(field{})); diff != "" {
				t.Errorf("readCSV (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadValue(t *testing.T) {
	s := func(v string) *string { return &v }
	text := column{isString: true}
	num := column{}
	tests := []struct {
		name string
		copy Copy
		col  column
		give field
		want *string
	}{
		{name: "value", col: text, give: field{value: s("x")}, want: s("x")},
		{name: "empty text is empty", col: text, give: field{value: s("")}, want: s("")},
		{name: "empty text with EMPTYASNULL", copy: Copy{EmptyAsNull: true}, col: text, give: field{value: s("")}, want: nil},
		{name: "empty number is null", col: num, give: field{value: s("")}, want: nil},
		{name: "blank text", col: text, give: field{value: s("  ")}, want: s("  ")},
		{name: "blank text with BLANKSASNULL", copy: Copy{BlanksAsNull: true}, col: text, give: field{value: s("  ")}, want: nil},
		{name: "null string", col: text, give: field{value: s(`\N`)}, want: nil},
		{name: "quoted null string is a value", col: text, give: field{value: s(`\N`), quoted: true}, want: s(`\N`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := loadValue(&tt.copy, tt.col, tt.give, `\N`)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("loadValue (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEncodeDelimited(t *testing.T) {
	null := "NULL"
	tests := []struct {
		name string
		u    Unload
		give [][]byte
		want string
	}{
		{name: "csv quoting", u: Unload{Format: "CSV"}, give: [][]byte{[]byte(`a"b`), []byte("c,d"), []byte("e\nf"), []byte("plain"), nil},
			want: "\"a\"\"b\",\"c,d\",\"e\nf\",plain,\n"},
		{name: "csv delimiter", u: Unload{Format: "CSV", Delimiter: ";"}, give: [][]byte{[]byte("a;b"), []byte("c,d")}, want: "\"a;b\";c,d\n"},
		{name: "text escape", u: Unload{Format: "TEXT", Escape: true}, give: [][]byte{[]byte(`a|b\c`), []byte("d\ne")}, want: "a\\|b\\\\c|d\\\ne\n"},
		{name: "text addquotes null as", u: Unload{Format: "TEXT", AddQuotes: true, NullAs: &null}, give: [][]byte{[]byte("x"), nil}, want: "\"x\"|NULL\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newUnloadWriter(&tt.u)
			if got := string(w.encodeDelimited(nil, tt.give)); got != tt.want {
				t.Errorf("encodeDelimited = %q, want %q", got, tt.want)
			}
		})
	}
}
