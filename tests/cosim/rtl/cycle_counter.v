// cycle_counter: counts clock cycles after reset and reports done once the count reaches
// i_limit. It has no DPI imports: byoc.cosim must build such designs too.
//
//   i_rst --> [ o_count + 1 ] --> o_count --> (o_count >= i_limit) --> o_done
//                                               ^
//                                            i_limit
//
// o_done is combinational, so with i_limit = 0 it is high before any clock edge.
`default_nettype none

module cycle_counter #(
    parameter integer WIDTH = 32
) (
    input  wire             i_clk,
    input  wire             i_rst,
    input  wire [WIDTH-1:0] i_limit,
    output reg  [WIDTH-1:0] o_count,
    output wire             o_done
);
    assign o_done = o_count >= i_limit;

    always @(posedge i_clk) begin
        if (i_rst) begin
            o_count <= {WIDTH{1'b0}};
        end else begin
            o_count <= o_count + 1'b1;
        end
    end
endmodule

`default_nettype wire
