// Package docs holds the documents the programs serve: the OpenAPI
// contract of the HTTP API (openapi.yaml), which GET /v1/openapi.yaml
// answers with. The rest of this folder is prose for people.
package docs

import _ "embed"

// OpenAPI is openapi.yaml: the native HTTP API's OpenAPI 3.1 contract.
//
//go:embed openapi.yaml
var OpenAPI []byte
