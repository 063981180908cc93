using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Threading.Channels;
using Microsoft.Win32.SafeHandles;

namespace OnionDrop.Files;

/// <summary>
/// Writes one file front to back: its first <c>directFrom</c> bytes through the page cache, the rest in large
/// aligned blocks with O_DIRECT where the filesystem allows. Bytes written once and not read back soon have no
/// reason to pass through the cache, and copying them there is the dearest step of a large write in this VM's
/// kernel (about 2 CPU-seconds per GB, against about 0.2 for a direct write). A small file written alone can be
/// cheaper through the cache, though: each direct write that extends a file waits for its own size update, so
/// the caller chooses where the switch lies (the opener: 8 MiB; the store, whose uploads run side by side: 0).
/// Full blocks queue for the disk while the next ones fill: up to <see cref="MaxBlocks"/> per file, rented only
/// as the disk falls behind. A direct write waits for the device, one at a time per file, so with only one
/// block queued behind it the producer stalled on every hiccup: on this VM sealing into the store then ran at
/// 400 MB/s on disk against 750 on tmpfs. What goes through the cache (the first part, and every block where
/// O_DIRECT is refused) is handed to writeback at once, so the final fsync finds little left to do.
/// Not thread-safe: one producer.
/// </summary>
public sealed class DirectFileWriter : IDisposable, IAsyncDisposable
{
    public const int BlockSize = 512 * 1024;
    /// <summary>Covers every logical block size in use (512 or 4096).</summary>
    public const int Alignment = 4096;
    /// <summary>Blocks one file may hold: the one filling and the rest queued for the disk.</summary>
    public const int MaxBlocks = 4;

    /// <summary>A full block on its way: its bytes, where they go, and how many the hash takes (not a tail's padding).</summary>
    private readonly record struct QueuedBlock(Memory<byte> Block, int Length, long Offset, int Hashed);

    private readonly long _directFrom;
    private readonly FileStream _file;     // small writes before the switch; its handle and SetLength after
    private readonly SafeFileHandle _handle;
    private readonly IncrementalHash? _hash;
    private readonly List<Memory<byte>> _blocks = [];   // every block rented, wherever it is now
    private Memory<byte> _block;           // the one filling
    private int _filled;
    private long _written;                 // bytes handed to the file (through the cache, or as whole blocks)
    private volatile bool _direct;         // cleared by the writing lane if a filesystem refuses a direct write
    private bool _switched, _disposed;
    // Blocks flow producer -> (hashing lane) -> writing lane -> free -> producer, each lane in file order.
    private Channel<QueuedBlock>? _toHash, _toWrite;
    private Channel<Memory<byte>>? _free;
    private Task _lanes = Task.CompletedTask;
    private Exception? _failure;           // the first thing that stopped a lane

    /// <param name="file">opened for writing at offset 0; the caller closes it, after <see cref="Flush"/></param>
    /// <param name="directFrom">where O_DIRECT begins: a multiple of <see cref="Alignment"/>, so the first block starts aligned</param>
    /// <param name="hash">
    /// takes every byte written, in order. Blocks are hashed on a lane of their own as they queue for the disk:
    /// a hand-off per block, never awaited by the producer (the store's ciphertext hash, handed over and awaited
    /// for each 64 KiB chunk, left a core idle for part of each upload).
    /// </param>
    public DirectFileWriter(FileStream file, long directFrom, IncrementalHash? hash = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(directFrom);
        if (directFrom % Alignment != 0) throw new ArgumentException($"must be a multiple of {Alignment}", nameof(directFrom));
        _directFrom = directFrom;
        _file = file;
        _handle = file.SafeFileHandle;
        _hash = hash;
    }

    /// <summary>Bytes written so far (the file's length once <see cref="Flush"/> has run).</summary>
    public long Length => _written + _filled;

    public void Write(ReadOnlySpan<byte> data)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        data = data[WriteCached(data)..];
        while (!data.IsEmpty)
        {
            data = data[Fill(data)..];
            if (_filled < BlockSize) continue;
            Enqueue(BlockSize, BlockSize);
            var next = NextBlock();
            _block = next.IsCompletedSuccessfully ? next.Result : next.AsTask().GetAwaiter().GetResult();
        }
    }

    /// <summary>
    /// <see cref="Write"/> for a caller on the thread pool: waits for a free block without holding a thread.
    /// (The pool does not see a blocked thread, and adds threads only slowly: with 64 uploads at once, blocked
    /// threads left the machine mostly idle.)
    /// The caller keeps <paramref name="data"/> unchanged until the returned task completes.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask WriteAsync(ReadOnlyMemory<byte> data)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        data = data[WriteCached(data.Span)..];
        while (!data.IsEmpty)
        {
            data = data[Fill(data.Span)..];
            if (_filled < BlockSize) continue;
            Enqueue(BlockSize, BlockSize);
            _block = await NextBlock();
        }
    }

    /// <summary>Writes what is left and waits for every write; the file then holds exactly what was written.</summary>
    public void Flush()
    {
        var flushed = FlushAsync();
        if (!flushed.IsCompletedSuccessfully) flushed.AsTask().GetAwaiter().GetResult();
    }

    /// <summary><see cref="Flush"/> without holding a thread while the disk works.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask FlushAsync()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        try
        {
            if (!_switched)
            {
                _file.Flush();
                return;
            }
            await Drain();
            if (_file.Length != _written) _file.SetLength(_written);
        }
        catch (ArgumentOutOfRangeException) { throw WriteFailure.FileTooLarge(_file.Name); }
    }

    /// <summary>
    /// Queues the partial block, then waits until every block is back from the disk. Writing may go on after it:
    /// the next block then starts off the alignment, and the filesystem's refusal of that sends the rest
    /// through the page cache.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask Drain()
    {
        if (_filled > 0) EnqueueTail();
        var back = new List<Memory<byte>>(_blocks.Count);
        var away = _block.IsEmpty ? _blocks.Count : _blocks.Count - 1;
        while (back.Count < away) back.Add(await NextWritten());
        if (_block.IsEmpty)
        {
            _block = back[^1];
            back.RemoveAt(back.Count - 1);
        }
        foreach (var block in back) _free!.Writer.TryWrite(block);
    }

    /// <summary>Writes the part before the switch through the page cache; returns how much of <paramref name="data"/> it took.</summary>
    private int WriteCached(ReadOnlySpan<byte> data)
    {
        if (_switched) return 0;
        var n = (int)Math.Min(data.Length, _directFrom - _written);
        _hash?.AppendData(data[..n]);
        try
        {
            _file.Write(data[..n]);
            _written += n;
            if (_written == _directFrom) SwitchToBlocks();
        }
        catch (ArgumentOutOfRangeException) { throw WriteFailure.FileTooLarge(_file.Name); } // EFBIG, as .NET reports it
        return n;
    }

    private void SwitchToBlocks()
    {
        _file.Flush();
        FileSync.StartWriteback(_handle, 0, _written);
        _direct = FileSync.TrySetDirectIo(_handle);
        _switched = true;
        var options = new UnboundedChannelOptions { SingleReader = true, SingleWriter = true };
        _toWrite = Channel.CreateUnbounded<QueuedBlock>(options);
        _free = Channel.CreateUnbounded<Memory<byte>>(options);
        var writing = Task.Run(WritingLaneAsync);
        if (_hash is null) _lanes = writing;
        else
        {
            _toHash = Channel.CreateUnbounded<QueuedBlock>(options);
            _lanes = Task.WhenAll(Task.Run(HashingLaneAsync), writing);
        }
        _block = Rent();
    }

    /// <summary>Copies into the current block; returns how much of <paramref name="data"/> fitted.</summary>
    private int Fill(ReadOnlySpan<byte> data)
    {
        var n = Math.Min(BlockSize - _filled, data.Length);
        data[..n].CopyTo(_block.Span[_filled..]);
        _filled += n;
        return n;
    }

    /// <summary>The last, partial block.</summary>
    private void EnqueueTail()
    {
        // A direct write must end on the alignment: pad with zeros, then cut the file back to size.
        var padded = _direct ? (_filled + Alignment - 1) / Alignment * Alignment : _filled;
        _block.Span[_filled..padded].Clear();
        var tail = _filled;
        Enqueue(padded, tail);
        _written -= padded - tail;
        _block = default;
    }

    /// <summary>Queues the current block for the disk; a lane that failed fails the producer here or at the next block.</summary>
    private void Enqueue(int length, int hashed)
    {
        if (!(_toHash ?? _toWrite)!.Writer.TryWrite(new QueuedBlock(_block, length, _written, hashed))) ThrowLaneFailure();
        _written += length;
        _filled = 0;
    }

    /// <summary>No more blocks: the lanes finish what is queued, each closing the next one's queue, and stop.</summary>
    private void EndQueue() => (_toHash ?? _toWrite)!.Writer.TryComplete();

    /// <summary>A block written already, or a new one while fewer than <see cref="MaxBlocks"/> are out, or the next to come back.</summary>
    private ValueTask<Memory<byte>> NextBlock()
    {
        if (_free!.Reader.TryRead(out var block)) return ValueTask.FromResult(block);
        if (_blocks.Count < MaxBlocks) return ValueTask.FromResult(Rent());
        return NextWritten();
    }

    /// <summary>The next block back from the disk; a lane's failure instead, as itself.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<Memory<byte>> NextWritten()
    {
        try { return await _free!.Reader.ReadAsync(); }
        catch (ChannelClosedException) { ThrowLaneFailure(); throw; }
    }

    private Memory<byte> Rent()
    {
        var block = BlockPool.Rent();
        _blocks.Add(block);
        return block;
    }

    /// <summary>A queue was closed, which only a lane's failure does while the writer is in use: rethrows it as itself (an IOException such as ENOSPC).</summary>
    private void ThrowLaneFailure()
    {
        if (Volatile.Read(ref _failure) is { } failure) ExceptionDispatchInfo.Throw(failure);
        throw new InvalidOperationException("the disk's queue closed without a failure");
    }

    private async Task HashingLaneAsync()
    {
        try
        {
            await foreach (var queued in _toHash!.Reader.ReadAllAsync())
            {
                _hash!.AppendData(queued.Block.Span[..queued.Hashed]);
                _toWrite!.Writer.TryWrite(queued);
            }
            _toWrite!.Writer.TryComplete();
        }
        catch (Exception e) { StopLanes(e); }
    }

    private async Task WritingLaneAsync()
    {
        try
        {
            await foreach (var queued in _toWrite!.Reader.ReadAllAsync())
            {
                WriteBlock(queued.Block[..queued.Length], queued.Offset);
                _free!.Writer.TryWrite(queued.Block);
            }
        }
        catch (Exception e) { StopLanes(e); }
    }

    /// <summary>
    /// Records the first failure and ends every queue with it, so the producer learns of it instead of waiting for
    /// a block (a lane downstream of the failed one stops on its closed queue, and its failure is not the news).
    /// </summary>
    private void StopLanes(Exception failure)
    {
        Interlocked.CompareExchange(ref _failure, failure, null);
        _toHash?.Writer.TryComplete(failure);
        _toWrite!.Writer.TryComplete(failure);
        _free!.Writer.TryComplete(failure);
    }

    private void WriteBlock(ReadOnlyMemory<byte> block, long offset)
    {
        try
        {
            try { RandomAccess.Write(_handle, block.Span, offset); }
            catch (IOException e) when (_direct && (e.HResult & 0xFFFF) == 22 /* EINVAL */)
            {
                // A filesystem that took the flag but not the write: go through the page cache instead.
                _direct = false;
                FileSync.ClearDirectIo(_handle);
                RandomAccess.Write(_handle, block.Span, offset);
            }
        }
        catch (ArgumentOutOfRangeException) { throw WriteFailure.FileTooLarge(_file.Name); } // EFBIG, as .NET reports it
        if (!_direct) FileSync.StartWriteback(_handle, offset, block.Length);
    }

    /// <summary>
    /// Waits for the blocks still queued (their memory must not be reused under them) and gives every block
    /// back, wiped. Does not close the file, and does not flush: the caller owns both.
    /// </summary>
    public void Dispose()
    {
        if (!CloseForDisposal()) return;
        _lanes.Wait();   // a lane's failure is recorded, not thrown: the file is being abandoned anyway
        foreach (var b in _blocks) BlockPool.Return(b);
    }

    /// <summary>
    /// <see cref="Dispose"/> for a caller on the thread pool: waits for the lanes without holding a thread. The
    /// lanes run on the pool too, so a blocking wait there starves it: 600 uploads cut off together each held a
    /// thread in Dispose while the lanes they waited for queued behind them, and the daemon answered nothing for
    /// minutes.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (!CloseForDisposal()) return;
        await _lanes;    // as in Dispose: a lane's failure is recorded, not thrown
        foreach (var b in _blocks) BlockPool.Return(b);
    }

    /// <summary>Marks this writer disposed and ends its queue; false if it already was.</summary>
    private bool CloseForDisposal()
    {
        if (_disposed) return false;
        _disposed = true;
        if (_switched) EndQueue();
        return true;
    }

    /// <summary>
    /// Pinned blocks (never moved by the GC) starting on the alignment O_DIRECT needs, kept for reuse:
    /// a run that writes a thousand files should not allocate a thousand sets of them.
    /// </summary>
    private static class BlockPool
    {
        private static readonly ConcurrentBag<Memory<byte>> Free = [];
        private const int MaxKept = 16;

        public static Memory<byte> Rent()
        {
            if (Free.TryTake(out var block)) return block;
            var raw = GC.AllocateUninitializedArray<byte>(BlockSize + Alignment, pinned: true);
            var address = Marshal.UnsafeAddrOfPinnedArrayElement(raw, 0);
            var skip = (int)((Alignment - address % Alignment) % Alignment);
            return raw.AsMemory(skip, BlockSize);
        }

        public static void Return(Memory<byte> block)
        {
            block.Span.Clear();   // it may hold plaintext (the opener) until the next writer overwrites it
            if (Free.Count < MaxKept) Free.Add(block);
        }
    }
}
