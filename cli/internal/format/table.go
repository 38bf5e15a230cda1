package format

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// Output is how list commands print: a table for people, JSON for programs.
type Output string

// The outputs of list commands.
const (
	Table Output = "table"
	JSON  Output = "json"
)

// ParseOutput checks an --output value.
func ParseOutput(s string) (Output, error) {
	switch Output(s) {
	case Table, JSON:
		return Output(s), nil
	}
	return "", fmt.Errorf("output %q: use table or json", s)
}

// WriteTable writes rows under a header, aligned in columns.
func WriteTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	line := func(cells []string) {
		for i, c := range cells {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, c)
		}
		fmt.Fprintln(tw)
	}
	line(header)
	for _, r := range rows {
		line(r)
	}
	return tw.Flush()
}

// WriteJSONValue writes v as indented JSON.
func WriteJSONValue(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
