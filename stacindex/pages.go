package stacindex

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Collection is one collection as served.
type Collection struct {
	ID  string
	Raw json.RawMessage // exactly as served
}

// Asset is one asset of an item.
type Asset struct {
	Key  string
	Href string
	Type string
	Size int64 // from file:size; -1 when absent
}

// Item is one item as served, with the fields the tree needs.
type Item struct {
	ID         string
	Collection string
	Raw        json.RawMessage // exactly as served
	Self       string          // the self link, resolved; base for relative hrefs
	Time       time.Time       // properties.updated, else properties.datetime; zero if neither
	// Datetime is properties.datetime, else start_datetime, in UTC: where
	// the date layout puts the item. Zero if neither.
	Datetime time.Time
	Assets   []Asset
}

type page struct {
	Features      []json.RawMessage `json:"features"`
	Collections   []json.RawMessage `json:"collections"`
	Links         []Link            `json:"links"`
	NumberMatched *int64            `json:"numberMatched"`
}

// Collections lists all collections, following next links.
func (c *Client) Collections(ctx context.Context) ([]Collection, error) {
	var out []Collection
	err := c.pages(ctx, request{method: http.MethodGet, url: c.resolve("collections")}, func(p *page) error {
		for _, raw := range p.Collections {
			var h struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(raw, &h); err != nil || h.ID == "" {
				c.log.Warn("skipping a collection without an id", "url", c.URL())
				continue
			}
			out = append(out, Collection{ID: h.ID, Raw: raw})
		}
		return nil
	})
	return out, err
}

// Items calls each for every item of the collection, page by page.
// Malformed items are skipped with a warning; items served twice (on two
// pages) are passed once.
func (c *Client) Items(ctx context.Context, collectionID string, each func(Item) error) error {
	return c.ItemPages(ctx, ItemQuery{Collection: collectionID}, func(items []Item, _ int64) error {
		for _, it := range items {
			if err := each(it); err != nil {
				return err
			}
		}
		return nil
	})
}

// ItemQuery is one paged item request: the items of a collection
// (optionally filtered by datetime), or a search.
type ItemQuery struct {
	Collection string // GET /collections/{Collection}/items
	Datetime   string // a datetime filter (RFC 3339 interval) on Collection
	Search     *Search
	// Heads: parse only what a listing needs (ID, Collection, Datetime,
	// Raw); no assets, self link or mtime. Listings are CPU-bound on JSON.
	Heads bool
}

// ItemPages calls each with the items of every page, in order, dropping
// malformed items (with a warning) and items already served on an earlier
// page. matched is the page's numberMatched, -1 when the API leaves it out.
// each returning ErrStop ends paging without an error.
func (c *Client) ItemPages(ctx context.Context, q ItemQuery, each func(items []Item, matched int64) error) error {
	var r request
	switch {
	case q.Search != nil:
		r = q.Search.request(c)
	default:
		v := url.Values{"limit": {strconv.Itoa(c.pageSize())}}
		if q.Datetime != "" {
			v.Set("datetime", q.Datetime)
		}
		r = request{method: http.MethodGet, url: c.resolve("collections/" + url.PathEscape(q.Collection) + "/items?" + v.Encode())}
	}
	base := r.url
	seen := map[string]struct{}{}
	err := c.pages(ctx, r, func(p *page) error {
		items := make([]Item, 0, len(p.Features))
		parse := ParseItem
		if q.Heads {
			parse = parseItemHead
		}
		for _, raw := range p.Features {
			it, err := parse(raw, base)
			if err != nil {
				c.log.Warn("skipping a malformed item", "collection", q.Collection, "err", err)
				continue
			}
			if it.Collection == "" {
				it.Collection = q.Collection
			}
			k := it.Collection + "\x00" + it.ID
			if _, dup := seen[k]; dup {
				continue
			}
			seen[k] = struct{}{}
			items = append(items, it)
		}
		matched := int64(-1)
		if p.NumberMatched != nil {
			matched = *p.NumberMatched
		}
		return each(items, matched)
	})
	if errors.Is(err, ErrStop) {
		return nil
	}
	return err
}

// ErrStop, returned by a paging callback, ends paging early.
var ErrStop = errors.New("stop paging")

// pages fetches r and follows rel=next links (GET, or POST with a body)
// until there are none, a link repeats, or MaxPages is reached. A page
// request the API fails with 500, 502 or 413 is asked again with half the
// limit, and the client keeps the smaller limit for later pages. The next
// page is fetched while each handles the current one, so that parsing
// and storing a page overlap the catalog's time for the next.
func (c *Client) pages(ctx context.Context, r request, each func(*page) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		body []byte
		err  error
	}
	fetch := func(r request) <-chan result {
		ch := make(chan result, 1)
		go func() {
			body, err := c.getPage(ctx, r)
			ch <- result{body, err}
		}()
		return ch
	}
	seen := map[string]bool{r.key(): true}
	pending := fetch(r)
	for n := 0; ; n++ {
		res := <-pending
		if res.err != nil {
			return res.err
		}
		var p page
		if err := json.Unmarshal(res.body, &p); err != nil {
			return fmt.Errorf("%s %s: malformed page: %v", r.method, redact(r.url), err)
		}
		next, ok := nextRequest(p.Links, r)
		switch {
		case !ok:
			pending = nil
		case seen[next.key()]:
			c.log.Warn("next link repeats an earlier page; stopping", "url", redact(next.url))
			pending = nil
		case n+1 == c.opt.MaxPages:
			c.log.Warn("stopped paging at the page limit", "url", redact(next.url), "pages", n+1)
			pending = nil
		default:
			seen[next.key()] = true
			pending = fetch(next)
		}
		if err := each(&p); err != nil {
			return err
		}
		if pending == nil {
			return nil
		}
		r = next
	}
}

func nextRequest(links []Link, cur request) (request, bool) {
	for _, l := range links {
		if l.Rel != "next" || l.Href == "" {
			continue
		}
		base, err := url.Parse(cur.url)
		if err != nil {
			return request{}, false
		}
		ref, err := url.Parse(l.Href)
		if err != nil {
			return request{}, false
		}
		abs := base.ResolveReference(ref)
		if abs.Scheme != "http" && abs.Scheme != "https" {
			return request{}, false // not a page we can fetch ("A:", "ftp://…")
		}
		next := request{method: http.MethodGet, url: abs.String(), shrinkable: cur.shrinkable}
		if l.Method == http.MethodPost {
			next.method = http.MethodPost
			next.body = []byte(l.Body)
			if len(next.body) == 0 {
				next.body = []byte("{}")
			}
		}
		return next, true
	}
	return request{}, false
}

// parseItemHead parses the fields of an item a listing needs.
func parseItemHead(raw json.RawMessage, _ string) (Item, error) {
	var f struct {
		ID         any    `json:"id"`
		Collection string `json:"collection"`
		Properties struct {
			Datetime *string `json:"datetime"`
			Start    *string `json:"start_datetime"`
		} `json:"properties"`
	}
	if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return Item{}, fmt.Errorf("item is not a JSON object")
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return Item{}, fmt.Errorf("item is not valid JSON: %v", err)
	}
	id, ok := f.ID.(string)
	if !ok || id == "" {
		return Item{}, fmt.Errorf("item has no string id")
	}
	it := Item{ID: id, Collection: f.Collection, Raw: raw}
	for _, s := range []*string{f.Properties.Datetime, f.Properties.Start} {
		if s == nil {
			continue
		}
		if t, err := time.Parse(time.RFC3339Nano, *s); err == nil {
			it.Datetime = t.UTC()
			break
		}
	}
	return it, nil
}

// ParseItem parses one item feature; base resolves a relative self link.
func ParseItem(raw json.RawMessage, base string) (Item, error) {
	var f struct {
		Type       string `json:"type"`
		ID         any    `json:"id"`
		Collection string `json:"collection"`
		Links      []Link `json:"links"`
		Properties struct {
			Datetime *string `json:"datetime"`
			Start    *string `json:"start_datetime"`
			Updated  *string `json:"updated"`
		} `json:"properties"`
		Assets map[string]struct {
			Href string          `json:"href"`
			Type string          `json:"type"`
			Size json.RawMessage `json:"file:size"`
		} `json:"assets"`
	}
	if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return Item{}, fmt.Errorf("item is not a JSON object")
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return Item{}, fmt.Errorf("item field %q has the wrong type (%s)", te.Field, te.Value)
		}
		return Item{}, fmt.Errorf("item is not valid JSON: %v", err)
	}
	id, ok := f.ID.(string)
	if !ok || id == "" {
		return Item{}, fmt.Errorf("item has no string id")
	}
	it := Item{ID: id, Collection: f.Collection, Raw: raw}
	for _, l := range f.Links {
		if l.Rel == "self" && l.Href != "" {
			it.Self = l.Href
			if b, err := url.Parse(base); err == nil {
				if r, err := url.Parse(l.Href); err == nil {
					it.Self = b.ResolveReference(r).String()
				}
			}
			break
		}
	}
	for _, s := range []*string{f.Properties.Updated, f.Properties.Datetime} {
		if s == nil {
			continue
		}
		if t, err := time.Parse(time.RFC3339Nano, *s); err == nil {
			it.Time = t
			break
		}
	}
	for _, s := range []*string{f.Properties.Datetime, f.Properties.Start} {
		if s == nil {
			continue
		}
		if t, err := time.Parse(time.RFC3339Nano, *s); err == nil {
			it.Datetime = t.UTC()
			break
		}
	}
	for key, a := range f.Assets {
		if a.Href == "" {
			continue
		}
		size := int64(-1)
		if n, err := strconv.ParseInt(string(a.Size), 10, 64); err == nil && n >= 0 {
			size = n
		}
		it.Assets = append(it.Assets, Asset{Key: key, Href: a.Href, Type: a.Type, Size: size})
	}
	sortAssets(it.Assets)
	return it, nil
}
