// vta_fifo: a synchronous first-word-fall-through FIFO.
//
// Holds up to DEPTH words of WIDTH bits. o_rdata is the oldest word whenever o_empty is 0;
// i_pop removes it. A push into a full FIFO or a pop from an empty one is ignored (callers
// check o_full / o_empty). Used for the three module instruction queues and fetch's buffer.
`default_nettype none

module vta_fifo #(
    parameter integer WIDTH = 8,
    parameter integer DEPTH = 4
) (
    input  wire             clk,
    input  wire             rst,
    input  wire             i_push,
    input  wire [WIDTH-1:0] i_wdata,
    input  wire             i_pop,
    output wire [WIDTH-1:0] o_rdata,
    output wire             o_empty,
    output wire             o_full,
    output wire [AW:0]      o_count
);
    localparam integer AW = DEPTH > 1 ? $clog2(DEPTH) : 1;

    reg [WIDTH-1:0] mem [0:DEPTH-1];
    reg [AW-1:0] head;
    reg [AW-1:0] tail;
    reg [AW:0]   count;

    wire push = i_push && count != DEPTH[AW:0];
    wire pop  = i_pop && count != 0;

    function automatic [AW-1:0] next(input [AW-1:0] index);
        next = index == DEPTH[AW-1:0] - 1'b1 ? {AW{1'b0}} : index + 1'b1;
    endfunction

    always @(posedge clk) begin
        if (rst) begin
            head  <= {AW{1'b0}};
            tail  <= {AW{1'b0}};
            count <= {(AW + 1){1'b0}};
        end else begin
            if (push) begin
                mem[tail] <= i_wdata;
                tail <= next(tail);
            end
            if (pop) head <= next(head);
            count <= count + {{AW{1'b0}}, push} - {{AW{1'b0}}, pop};
        end
    end

    assign o_rdata = mem[head];
    assign o_empty = count == 0;
    assign o_full  = count == DEPTH[AW:0];
    assign o_count = count;
endmodule

`default_nettype wire
