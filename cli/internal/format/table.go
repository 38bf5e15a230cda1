package format

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"gopkg.in/yaml.v3"
)

// Output is how list and describe commands print: a table for people, JSON
// or YAML for programs.
type Output string

// The outputs of list and describe commands.
const (
	Table Output = "table"
	JSON  Output = "json"
	YAML  Output = "yaml"
)

// ParseOutput checks an --output value.
func ParseOutput(s string) (Output, error) {
	switch Output(s) {
	case Table, JSON, YAML:
		return Output(s), nil
	}
	return "", fmt.Errorf("output %q: use table, json or yaml", s)
}

// Write writes v as JSON or YAML, or else calls table, which writes the
// table form.
func (o Output) Write(w io.Writer, v any, table func() error) error {
	switch o {
	case JSON:
		return WriteJSONValue(w, v)
	case YAML:
		enc := yaml.NewEncoder(w)
		enc.SetIndent(2)
		if err := enc.Encode(v); err != nil {
			return err
		}
		return enc.Close()
	}
	return table()
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
