// vta_token_queue: one dependency-token queue between two modules (docs/vta-isa.md,
// "Modules and token queues"). Tokens carry no data, so the queue is a counter: the producer
// pushes, the consumer pops when o_count is non-zero. A push and a pop in the same cycle
// cancel.
`default_nettype none

module vta_token_queue #(
    parameter integer WIDTH = 16
) (
    input  wire             clk,
    input  wire             rst,
    input  wire             i_push,
    input  wire             i_pop,
    output reg  [WIDTH-1:0] o_count
);
    always @(posedge clk) begin
        if (rst) o_count <= {WIDTH{1'b0}};
        else     o_count <= o_count + {{(WIDTH - 1){1'b0}}, i_push}
                                    - {{(WIDTH - 1){1'b0}}, i_pop && o_count != 0};
    end
endmodule

`default_nettype wire
