using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Http;

namespace OnionDrop.Daemon.Web;

/// <summary>
/// The request body as the upload handler reads it. Each read must make progress within the idle timeout:
/// Kestrel's minimum data rate is an average, so an upload that ran fast and then stopped would hang
/// for a long while; this bounds a stall however the upload began. Failures of the client's side come
/// out as <see cref="UploadRefused"/>, never as errors that would look like the server's.
/// </summary>
public sealed class IdleTimeoutStream(Stream body, TimeSpan idleTimeout, long maxSubmissionBytes, CancellationToken requestAborted) : Stream
{
    private readonly CancellationTokenSource _idle = CancellationTokenSource.CreateLinkedTokenSource(requestAborted);

    // Called once per chunk of an upload: the state machine is reused rather than allocated each time.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        _idle.CancelAfter(idleTimeout);
        try
        {
            return await body.ReadAsync(buffer, _idle.Token);
        }
        catch (OperationCanceledException) { throw UploadRefused.Gone(); }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw UploadRefused.TooLarge(maxSubmissionBytes);
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status408RequestTimeout) { throw UploadRefused.Gone(); }
        catch (BadHttpRequestException) { throw UploadRefused.Malformed(); }
        // Reading the request body touches no disk: any I/O error here is the connection's.
        catch (IOException) { throw UploadRefused.Gone(); }
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("synchronous reads would block a thread per slow Tor upload");

    protected override void Dispose(bool disposing)
    {
        if (disposing) _idle.Dispose();
        base.Dispose(disposing);
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
