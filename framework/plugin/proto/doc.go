// Package proto holds the wire types and gRPC stubs of the liquidlab stage
// plugin protocol (service liquidlab.plugin.v1.Stage), generated from
// stage.proto. Only package plugin uses it; plugin authors call plugin.Serve
// and never see these types.
//
// Regenerate from this directory with protoc 3.21, protoc-gen-go v1.36.12 and
// protoc-gen-go-grpc v1.6.2:
//
//	protoc --proto_path=. --go_out=. --go_opt=paths=source_relative \
//	  --go-grpc_out=. --go-grpc_opt=paths=source_relative stage.proto
package proto

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative stage.proto
