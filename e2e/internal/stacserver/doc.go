// Package stacserver is a STAC API server for end-to-end tests: it serves a
// fixtures.Catalog held in memory on 127.0.0.1, with hooks to inject faults,
// require authentication and record requests.
//
// Endpoints, below the catalog URL http://127.0.0.1:PORT/stac:
//
//	GET  /stac                                   landing page (links, conformsTo)
//	GET  /stac/conformance
//	GET  /stac/collections
//	GET  /stac/collections/{id}
//	GET  /stac/collections/{id}/items?limit=N&token=T   pages with rel=next GET links
//	GET  /stac/collections/{id}/items/{itemId}
//	GET  /stac/search?collections=a,b&ids=x,y&limit=N&token=T
//	POST /stac/search   {"collections":[...],"ids":[...],"limit":N,"token":T}
//	                    pages with rel=next POST links carrying a body
//
// Path segments are percent-decoded one by one, so IDs with "/", "." or ".."
// work when escaped as fixtures.PathSegment does. Item and collection
// documents are written exactly as the catalog holds them, also inside
// pages. bbox, datetime and other search filters are ignored, except once
// generated collections are served (AddGenerated, generated.go): then
// /search and their items pages filter by datetime (and bbox), page with
// pgstac-like keyset tokens, and items/{id} answers from the ID alone.
//
// Static files (Catalog.Files, SetFile) are served with Range, ETag and
// conditional request support under /files/. Other paths go to handlers a
// test registers with Handle (e.g. GET /fileproxy/credentials).
//
// Every request passes, in order: the request log, faults (AddFault,
// FailNext, SetDelay, TruncateNext, SetFault), then the auth check
// (SetAuth for /stac, SetFilesAuth for /files), then the handler.
package stacserver
