package report

import (
	"bytes"
	"fmt"
)

// SmartModules holds the figures of the SmartModule consume scenarios
// (package bench/internal/smartmodules).
type SmartModules struct {
	// Error says why the scenarios have no (or partial) figures.
	Error string `json:"error,omitempty"`
	// SPU is the command line of the SPU.
	SPU string `json:"spu"`
	// Records of RecordBytes each are in the partition each case reads.
	Records     int64             `json:"records"`
	RecordBytes int               `json:"record_bytes"`
	Cases       []SmartModuleCase `json:"cases"`
}

// SmartModuleCase is one consume of the whole partition, the best of two.
type SmartModuleCase struct {
	Name string `json:"name"`
	// Module is the example module and its parameters; empty for none.
	Module  string  `json:"module,omitempty"`
	Seconds float64 `json:"seconds"`
	// RecordsPerSec counts the stored records read (Records / Seconds);
	// StoredMBps their values' bytes.
	RecordsPerSec float64 `json:"records_per_sec"`
	StoredMBps    float64 `json:"stored_mb_per_sec"`
	// OutRecords and OutValueBytes are what reached the consumer.
	OutRecords    int64 `json:"out_records"`
	OutValueBytes int64 `json:"out_value_bytes"`
	// VsPlain is RecordsPerSec over that of the consume without a module.
	VsPlain float64 `json:"vs_plain"`
}

// writeSmartModules writes the SmartModules section.
func writeSmartModules(b *bytes.Buffer, run Run) {
	s := run.SmartModules
	if s == nil {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## SmartModules\n\n")
	p("Consumes of one partition of %s records of %d bytes (JSON objects, one in a hundred with `\"level\":\"error\"`), from the beginning to the end, by one client (`client.WithStopAtEnd`, NextBatch) of a standalone SPU (`%s`) on the same machine, with no module and through example modules from `smartmodule/examples` sent inline (`client.WithSmartModules` with the module's bytes; `--smartmodule-path` in the CLI) that the SPU runs on each response before sending it. Records/s counts the stored records the consume moves through, kept or not; best of two runs each, after a warm-up consume. The target of issue 6: the filter keeping 1%% moves at least 5 times the records/s of the plain consume, as it sends a hundredth of the bytes.\n\n",
		num(float64(s.Records)), s.RecordBytes, s.SPU)
	if s.Error != "" {
		p("**Failed:** %s\n\n", cell(s.Error))
	}
	p("| consume | module | records/s | stored MB/s | vs plain | records received | value bytes received |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |\n")
	for _, c := range s.Cases {
		mod := c.Module
		if mod == "" {
			mod = "-"
		}
		p("| %s | %s | %s | %s | %sx | %s | %s |\n", c.Name, mod, num(c.RecordsPerSec), dec(c.StoredMBps, 1), dec(c.VsPlain, 2), num(float64(c.OutRecords)), size(c.OutValueBytes))
	}
	p("\n")
}
