package stacserver

import "github.com/prescient/prescientfs/e2e/internal/fixtures"

// catalogIndex is an immutable lookup structure over a catalog.
type catalogIndex struct {
	cat   *fixtures.Catalog
	colls map[string]*fixtures.Collection
	items map[string]map[string]*fixtures.Item // collection → item ID → item
}

func newCatalogIndex(c *fixtures.Catalog) *catalogIndex {
	ix := &catalogIndex{
		cat:   c,
		colls: map[string]*fixtures.Collection{},
		items: map[string]map[string]*fixtures.Item{},
	}
	for i := range c.Collections {
		coll := &c.Collections[i]
		ix.colls[coll.ID] = coll
		m := map[string]*fixtures.Item{}
		for j := range coll.Items {
			m[coll.Items[j].ID] = &coll.Items[j]
		}
		ix.items[coll.ID] = m
	}
	return ix
}
