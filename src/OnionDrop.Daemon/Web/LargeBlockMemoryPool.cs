using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
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
        Wipe(block);
        if (Interlocked.Increment(ref _retained) <= MaxRetained) _free.Enqueue(block);
        else Interlocked.Decrement(ref _retained);
    }

    /// <summary>
    /// Zeroes the block's pages that are in memory, and only those. A connection that has sent a few bytes of its
    /// headers holds a block; zeroing all 64 KiB (even reading it) made its untouched pages resident, so 10,000 such
    /// connections, once closed, took the daemon from 80 to 830 MB, and more with each round. A page never touched
    /// holds nothing. (A page swapped out is not zeroed, as the swap's copy never was: the unit allows no swap.)
    /// </summary>
    internal static unsafe void Wipe(byte[] block)
    {
        var start = Marshal.UnsafeAddrOfPinnedArrayElement(block, 0);
        var pageSize = Environment.SystemPageSize;
        var firstPage = start & ~(nint)(pageSize - 1);
        var pages = (int)((start + block.Length - firstPage + pageSize - 1) / pageSize);
        Span<byte> resident = stackalloc byte[pages];
        fixed (byte* vec = resident)
            if (mincore(firstPage, (nuint)pages * (nuint)pageSize, vec) != 0)
            {
                Array.Clear(block);
                return;
            }
        for (var i = 0; i < pages; i++)
        {
            if ((resident[i] & 1) == 0) continue;
            var from = (int)Math.Max(0, firstPage + (nint)i * pageSize - start);
            var to = (int)Math.Min(block.Length, firstPage + (nint)(i + 1) * pageSize - start);
            block.AsSpan(from, to - from).Clear();
        }
    }

    [DllImport("libc", SetLastError = true)] private static extern unsafe int mincore(nint addr, nuint length, byte* vec);

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
