// Package check renders the Helm chart in ../switchyard with Helm's own
// library (v4) for several sets of values and decodes every object it
// makes strictly into the Kubernetes API types, so that a misspelt field or
// a broken template fails a test. It is a module of its own: Helm and the
// Kubernetes types stay out of the product's module.
package check
