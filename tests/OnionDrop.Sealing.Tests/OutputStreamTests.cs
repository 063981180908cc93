using OnionDrop.Testing;

namespace OnionDrop.Sealing.Tests;

/// <summary>The sealer against outputs that behave like a disk or a network: slow, or failing.</summary>
public class OutputStreamTests
{
    [Test]
    public async Task WritesInFlightAreNeverOverlappedNorTheirBuffersReused()
    {
        using var key = JournalistKey.Generate();
        var data = Seal.Bytes(1_000_000, 99);
        var output = new SlowStream();
        await using (var sealer = new SubmissionSealer(output, [key.PublicKey]))
        {
            await sealer.BeginFileAsync("d", "x/y");
            for (var o = 0; o < data.Length; o += 30_000) await sealer.WriteAsync(data.AsMemory(o, Math.Min(30_000, data.Length - o)));
            await sealer.EndFileAsync();
            await sealer.CompleteAsync("slow", "", Seal.ReceivedAt);
            Assert.That(sealer.CiphertextLength, Is.EqualTo(output.Inner.Length));
        }
        using var dir = new TempDirectory();
        var opened = Seal.Open(output.Inner.ToArray(), key, dir.Path);
        Assert.That(File.ReadAllBytes(Path.Combine(opened.Directory, "d")), Is.EqualTo(data));
    }

    [Test]
    public async Task AFailingOutputBreaksTheSealerForGood()
    {
        using var key = JournalistKey.Generate();
        await using var sealer = new SubmissionSealer(new FailingStream(), [key.PublicKey]);
        await sealer.BeginFileAsync("d", "x/y");
        await Assert.ThrowsAsync<IOException>(async () =>
        {
            for (var i = 0; i < 10; i++) await sealer.WriteAsync(new byte[64 * 1024]);
        });
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await sealer.WriteAsync(new byte[1]));
    }

    /// <summary>Copies each write only when it completes, later: a reused buffer would corrupt the copy.</summary>
    private sealed class SlowStream : WriteOnlyStream
    {
        public readonly MemoryStream Inner = new();
        private int _busy;

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (Interlocked.Exchange(ref _busy, 1) == 1) throw new InvalidOperationException("overlapping writes");
            await Task.Delay(1, cancellationToken);
            Inner.Write(buffer.Span);
            Volatile.Write(ref _busy, 0);
        }

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException("sync write");
    }

    private sealed class FailingStream : WriteOnlyStream
    {
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromException(new IOException("No space left on device"));

        public override void Write(byte[] buffer, int offset, int count) => throw new IOException("No space left on device");
    }

    /// <summary>What every output here is besides its writes: not readable, not seekable.</summary>
    private abstract class WriteOnlyStream : Stream
    {
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
