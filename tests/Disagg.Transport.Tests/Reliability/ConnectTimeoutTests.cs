using System.Net;
using System.Net.Sockets;
using Disagg.Tests.Reliability;
using Disagg.Transport.Sockets;
using Disagg.Transport.Tests.Sockets;

namespace Disagg.Transport.Tests.Reliability;

/// <summary>
/// A decode worker that never answers the connection itself: the connect ends at <see cref="SocketTransportOptions.ConnectTimeout"/>
/// with a typed error naming what timed out, instead of waiting on the kernel's SYN retries.
/// </summary>
[Trait("Category", "Reliability")]
public sealed class ConnectTimeoutTests
{
    [Fact]
    public async Task A_connect_that_gets_no_answer_times_out_with_a_typed_error()
    {
        // A listener that never accepts, its queue filled: Linux completes backlog + 1 connections, then drops further SYNs,
        // so the next connect gets no answer at all (what a dead host or a black-holing firewall looks like).
        Assert.True(OperatingSystem.IsLinux(), "This test relies on Linux's accept-queue behaviour (CI runs Linux).");
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var endPoint = (IPEndPoint)listener.LocalEndPoint!;
        var fillers = new List<Socket>();
        try
        {
            for (int i = 0; i < 2; i++)
            {
                var filler = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                fillers.Add(filler);
                await filler.ConnectAsync(endPoint);
            }

            var clock = new ManualTimeProvider();
            var connectTimeout = TimeSpan.FromSeconds(3);
            var options = new SocketTransportOptions { SharedSecret = TestSupport.Secret, TimeProvider = clock, ConnectTimeout = connectTimeout };
            var connecting = RemoteDecodeEngine.ConnectAsync(endPoint, options);
            await TestSupport.WaitUntil(() => clock.PendingTimeoutCount == 1, () => "No connect timeout was armed.");
            Assert.False(connecting.IsCompleted, "The connect completed, or failed, instead of waiting for an answer.");

            clock.Advance(connectTimeout);

            // Bounded in real time so that a regression fails instead of hanging the run.
            var error = await Assert.ThrowsAsync<DisaggTimeoutException>(() => connecting.WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.Equal(connectTimeout, error.Timeout);
            Assert.Contains("connecting to the decode worker", error.Operation, StringComparison.Ordinal);
            Assert.Contains(endPoint.ToString(), error.Message, StringComparison.Ordinal);
        }
        finally
        {
            foreach (var filler in fillers) filler.Dispose();
        }
    }
}
