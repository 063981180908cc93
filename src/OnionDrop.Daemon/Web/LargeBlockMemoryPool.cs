using System.Buffers;
using System.Collections.Concurrent;
using Microsoft.AspNetCore.Connections;

namespace OnionDrop.Daemon.Web;

/// <summary>
/// Kestrel's socket transport receives into one pool block per recv(2). Its default blocks are 4 KiB,
/// which makes a 1 GiB upload about 800,000 system calls (recv, the MSG_PEEK before it, wake-ups), and
/// system calls are dear in this VM. Blocks of 64 KiB, the sealer's own chunk size, cut that sixteenfold.
/// Idle connections hold no block (Kestrel waits for data before renting one). Returned blocks are wiped.
/// </summary>
public sealed class LargeBlockMemoryPoolFactory : IMemoryPoolFactory<byte>
{
    public MemoryPool<byte> Create(MemoryPoolOptions? options = null) => new LargeBlockMemoryPool();
}

public sealed class LargeBlockMemoryPool : MemoryPool<byte>
{
    public const int BlockSize = 64 * 1024;

    /// <summary>Blocks kept for reuse beyond this are left to the GC, so a burst does not pin memory for good.</summary>
    private const int MaxRetained = 256;

    private readonly ConcurrentQueue<byte[]> _free = new();
    private int _retained;

    public override int MaxBufferSize => BlockSize;

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, BlockSize);
        if (_free.TryDequeue(out var block)) Interlocked.Decrement(ref _retained);
        // Pinned: the socket receives straight into it without the GC having to hold it in place.
        else block = GC.AllocateUninitializedArray<byte>(BlockSize, pinned: true);
        return new Lease(this, block);
    }

    private void Return(byte[] block)
    {
        // Blocks carry a source's plaintext on its way to the sealer: none of it outlives its request.
        Array.Clear(block);
        if (Interlocked.Increment(ref _retained) <= MaxRetained) _free.Enqueue(block);
        else Interlocked.Decrement(ref _retained);
    }

    protected override void Dispose(bool disposing) => _free.Clear();

    private sealed class Lease(LargeBlockMemoryPool pool, byte[] block) : IMemoryOwner<byte>
    {
        private byte[]? _block = block;

        public Memory<byte> Memory => _block ?? throw new ObjectDisposedException(nameof(Lease));

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _block, null) is { } b) pool.Return(b);
        }
    }
}
