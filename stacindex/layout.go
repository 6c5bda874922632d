package stacindex

import (
	"encoding/json"
	"fmt"
	"time"
)

// Layout is how a collection directory shows its items.
type Layout int

const (
	// LayoutAuto is flat up to MaxListing items, date above.
	LayoutAuto Layout = iota
	// LayoutFlat lists every item in the collection directory.
	LayoutFlat
	// LayoutDate lists YYYY/MM/DD/<item> by the item's UTC datetime.
	LayoutDate
)

func (l Layout) String() string {
	switch l {
	case LayoutFlat:
		return "flat"
	case LayoutDate:
		return "date"
	}
	return "auto"
}

// ParseLayout reads --layout.
func ParseLayout(s string) (Layout, error) {
	switch s {
	case "", "auto":
		return LayoutAuto, nil
	case "flat":
		return LayoutFlat, nil
	case "date":
		return LayoutDate, nil
	}
	return 0, fmt.Errorf("--layout %q: want auto, flat or date", s)
}

// Extent is a collection's temporal extent, in whole UTC days; a bound the
// collection leaves open is zero.
type Extent struct{ Start, End time.Time }

// temporalExtent reads extent.temporal.interval[0] of a collection.
func temporalExtent(raw []byte) Extent {
	var c struct {
		Extent struct {
			Temporal struct {
				Interval [][]*string `json:"interval"`
			} `json:"temporal"`
		} `json:"extent"`
	}
	var e Extent
	if json.Unmarshal(raw, &c) != nil || len(c.Extent.Temporal.Interval) == 0 || len(c.Extent.Temporal.Interval[0]) != 2 {
		return e
	}
	iv := c.Extent.Temporal.Interval[0]
	for i, p := range []*time.Time{&e.Start, &e.End} {
		if iv[i] == nil {
			continue
		}
		if t, err := time.Parse(time.RFC3339Nano, *iv[i]); err == nil {
			*p = t.UTC()
		}
	}
	return e
}

// YearRange is the years of the date layout: from the extent's start
// (unknown: the end's year) to its end (open: now).
func (e Extent) YearRange(now time.Time) (first, last int) {
	end := e.End
	if end.IsZero() {
		end = now.UTC()
	}
	start := e.Start
	if start.IsZero() || start.After(end) {
		start = end
	}
	return start.Year(), end.Year()
}

// Contains reports whether the day (y, m, d) overlaps the extent; d = 0
// asks about the month, m = 0 about the year.
func (e Extent) Contains(now time.Time, y, m, d int) bool {
	from := time.Date(y, time.Month(max(m, 1)), max(d, 1), 0, 0, 0, 0, time.UTC)
	var to time.Time
	switch {
	case m == 0:
		to = from.AddDate(1, 0, 0)
	case d == 0:
		to = from.AddDate(0, 1, 0)
	default:
		to = from.AddDate(0, 0, 1)
	}
	end := e.End
	if end.IsZero() {
		end = now.UTC()
	}
	first, _ := e.YearRange(now)
	start := e.Start
	if start.IsZero() {
		start = time.Date(first, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return to.After(start) && !from.After(end)
}

// DaysIn is the number of days of a month.
func DaysIn(y, m int) int {
	return time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// dayInterval is the datetime filter that fills a day directory.
func dayInterval(day time.Time) string {
	d := day.Format("2006-01-02")
	return d + "T00:00:00Z/" + d + "T23:59:59.999999Z"
}
