package playbooks

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// sizeUnits are the units a byte size may carry. KiB/MiB/GiB are powers of
// 1024 and KB/MB/GB powers of 1000, as in IEC 80000-13; units ignore case.
var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kb":  1000,
	"kib": 1 << 10,
	"mb":  1000 * 1000,
	"mib": 1 << 20,
	"gb":  1000 * 1000 * 1000,
	"gib": 1 << 30,
}

// sizePattern is also the JSON Schema pattern of a size string.
const sizePattern = `^[0-9]+ ?([bB]|[kKmMgG][iI]?[bB])?$`

var sizeRE = regexp.MustCompile(`^([0-9]+) ?([A-Za-z]*)$`)

// parseSize parses "1048576", "512KiB", "1 MiB", "10MB".
func parseSize(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a byte size; write a number of bytes or a number with a unit, e.g. 512KiB or 1MiB", s)
	}
	mult, ok := sizeUnits[strings.ToLower(m[2])]
	if !ok {
		return 0, fmt.Errorf("unknown size unit %q in %q; use B, KiB, MiB, GiB (1024) or KB, MB, GB (1000)", m[2], s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n * mult, nil
}
