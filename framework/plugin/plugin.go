package plugin

import (
	"context"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"liquidlab/framework/plugin/proto"
	"liquidlab/framework/stage"
)

// Handshake constants shared by hosts and plugins. A plugin built against a
// different ProtocolVersion is refused at start with a message saying so.
const (
	ProtocolVersion  = 1
	MagicCookieKey   = "LIQUIDLAB_PLUGIN"
	MagicCookieValue = "7f3c1a9e-liquidlab-stage-plugin"

	// MaxMessageSize bounds one gRPC message on both sides (the bytes
	// transport carries whole tensors in messages).
	MaxMessageSize = 1 << 30
)

// Handshake is the go-plugin handshake of liquidlab stage plugins, the one
// value both sides use (Launch on the host, Serve in the plugin). The protocol
// version is negotiated through the versioned plugin sets (see pluginSets), so
// a plugin of another version is refused with a message naming both versions.
var Handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   MagicCookieKey,
	MagicCookieValue: MagicCookieValue,
}

// StagePlugin is the go-plugin plugin of one stage kind: on the plugin side it
// serves Impl, on the host side it dispenses the gRPC client stub.
type StagePlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	Impl stage.Stage

	server *grpcServer
}

var _ goplugin.GRPCPlugin = (*StagePlugin)(nil)

// pluginSets offers p as the one stage kind served under protocol version.
func pluginSets(version int, kind string, p *StagePlugin) map[int]goplugin.PluginSet {
	return map[int]goplugin.PluginSet{version: {kind: p}}
}

// GRPCServer registers the stage service.
func (p *StagePlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	proto.RegisterStageServer(s, p.server)
	return nil
}

// GRPCClient returns the host's stub.
func (p *StagePlugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return proto.NewStageClient(c), nil
}
