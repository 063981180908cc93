using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace OnionDrop.Files;

/// <summary>
/// Writes one file front to back: its first <c>directFrom</c> bytes through the page cache, the rest in large
/// aligned blocks with O_DIRECT where the filesystem allows. Bytes written once and not read back soon have no
/// reason to pass through the cache, and copying them there is the dearest step of a large write in this VM's
/// kernel (about 2 CPU-seconds per GB, against about 0.2 for a direct write). A small file written alone can be
/// cheaper through the cache, though: each direct write that extends a file waits for its own size update, so
/// the caller chooses where the switch lies (the opener: 8 MiB; the store, whose uploads run side by side: 0).
/// A full block goes to disk on a pool thread while the next one fills. What goes through the cache (the
/// first part, and every block where O_DIRECT is refused) is handed to writeback at once, so the final fsync
/// finds little left to do.
/// Not thread-safe: one producer.
/// </summary>
public sealed class DirectFileWriter : IDisposable
{
    public const int BlockSize = 512 * 1024;
    /// <summary>Covers every logical block size in use (512 or 4096).</summary>
    public const int Alignment = 4096;

    private readonly long _directFrom;

    private readonly FileStream _file;     // small writes before the switch; its handle and SetLength after
    private readonly SafeFileHandle _handle;
    private Memory<byte>[]? _blocks;       // rented at the switch: a small file never needs them
    private int _current, _filled;
    private long _written;                 // bytes handed to the file (through the cache, or as whole blocks)
    private bool _direct, _disposed;
    private readonly BackgroundStep _blockWrite;     // the other block on its way to disk
    private ReadOnlyMemory<byte> _writing;           // that block's bytes, and where they go
    private long _writingAt;

    /// <param name="file">opened for writing at offset 0; the caller closes it, after <see cref="Flush"/></param>
    /// <param name="directFrom">where O_DIRECT begins: a multiple of <see cref="Alignment"/>, so the first block starts aligned</param>
    public DirectFileWriter(FileStream file, long directFrom)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(directFrom);
        if (directFrom % Alignment != 0) throw new ArgumentException($"must be a multiple of {Alignment}", nameof(directFrom));
        _directFrom = directFrom;
        _file = file;
        _handle = file.SafeFileHandle;
        _blockWrite = new BackgroundStep(WriteBlock);
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
            _blockWrite.Wait();   // the other block is free again (and its error, if any, surfaces here)
            BeginBlockWrite(BlockSize);
        }
    }

    /// <summary>
    /// <see cref="Write"/> for a caller on the thread pool: waits for the other block's write without holding a
    /// thread. (The pool does not see a thread blocked in <see cref="BackgroundStep.Wait"/>, and adds threads
    /// only slowly: with 64 uploads at once, blocked threads left the machine mostly idle.)
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
            await _blockWrite.WaitAsync();
            BeginBlockWrite(BlockSize);
        }
    }

    /// <summary>Writes what is left and waits for every write; the file then holds exactly what was written.</summary>
    public void Flush()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_blocks is null)
        {
            _file.Flush();
            return;
        }
        if (_filled > 0)
        {
            _blockWrite.Wait();
            BeginTailWrite();
        }
        _blockWrite.Wait();
        if (_file.Length != _written) _file.SetLength(_written);
    }

    /// <summary><see cref="Flush"/> without holding a thread while the disk works.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask FlushAsync()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_blocks is null)
        {
            _file.Flush();
            return;
        }
        if (_filled > 0)
        {
            await _blockWrite.WaitAsync();
            BeginTailWrite();
        }
        await _blockWrite.WaitAsync();
        if (_file.Length != _written) _file.SetLength(_written);
    }

    /// <summary>Writes the part before the switch through the page cache; returns how much of <paramref name="data"/> it took.</summary>
    private int WriteCached(ReadOnlySpan<byte> data)
    {
        if (_blocks is not null) return 0;
        var n = (int)Math.Min(data.Length, _directFrom - _written);
        _file.Write(data[..n]);
        _written += n;
        if (_written == _directFrom) SwitchToBlocks();
        return n;
    }

    private void SwitchToBlocks()
    {
        _file.Flush();
        FileSync.StartWriteback(_handle, 0, _written);
        _direct = FileSync.TrySetDirectIo(_handle);
        _blocks = [BlockPool.Rent(), BlockPool.Rent()];
    }

    /// <summary>Copies into the current block; returns how much of <paramref name="data"/> fitted.</summary>
    private int Fill(ReadOnlySpan<byte> data)
    {
        var n = Math.Min(BlockSize - _filled, data.Length);
        data[..n].CopyTo(_blocks![_current].Span[_filled..]);
        _filled += n;
        return n;
    }

    /// <summary>The last, partial block, once the other block is free.</summary>
    private void BeginTailWrite()
    {
        // A direct write must end on the alignment: pad with zeros, then cut the file back to size.
        var padded = _direct ? (_filled + Alignment - 1) / Alignment * Alignment : _filled;
        _blocks![_current].Span[_filled..padded].Clear();
        var tail = _filled;
        BeginBlockWrite(padded);
        _written -= padded - tail;
    }

    /// <summary>Sends the current block to disk and switches to the other, whose own write must be done.</summary>
    private void BeginBlockWrite(int length)
    {
        _writing = _blocks![_current][..length];
        _writingAt = _written;
        _blockWrite.Start();
        _written += length;
        _current ^= 1;
        _filled = 0;
    }

    private void WriteBlock()
    {
        var (block, offset) = (_writing, _writingAt);
        try { RandomAccess.Write(_handle, block.Span, offset); }
        catch (IOException e) when (_direct && (e.HResult & 0xFFFF) == 22 /* EINVAL */)
        {
            // A filesystem that took the flag but not the write: go through the page cache instead.
            _direct = false;
            FileSync.ClearDirectIo(_handle);
            RandomAccess.Write(_handle, block.Span, offset);
        }
        if (!_direct) FileSync.StartWriteback(_handle, offset, block.Length);
    }

    /// <summary>
    /// Waits for a block write still in flight (its memory must not be reused under it) and gives the
    /// blocks back, wiped. Does not close the file, and does not flush: the caller owns both.
    /// </summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try { _blockWrite.Wait(); }
        catch (IOException) { }   // the file is being abandoned anyway
        foreach (var b in _blocks ?? []) BlockPool.Return(b);
    }

    /// <summary>
    /// Pinned blocks (never moved by the GC) starting on the alignment O_DIRECT needs, kept for reuse:
    /// a run that writes a thousand files should not allocate a thousand pairs of them.
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
